/**
 * Checkpoint readers: PyTorch `torch.save` zip archives (.pt/.pth) and `.safetensors`.
 * Both expose tensors by name and read each one lazily, so a large checkpoint is never held
 * in memory whole.
 */
import * as fs from 'fs';
import { Sam2Error } from '../errors';
import { unpickle, type TensorRef } from './pickle';
import { ZipReader, fileSource, type ByteSource } from './zip';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

const ELEMENT_SIZE: Record<DType, number> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

export interface TensorInfo {
  dtype: DType;
  shape: number[];
}

/** A readable set of named tensors. */
export interface Checkpoint {
  readonly path: string;
  keys(): string[];
  info(key: string): TensorInfo;
  /** C-order values as float64 numbers (int64 beyond 2^53 lose precision); bool as 0/1. */
  values(key: string): Float64Array;
  /** C-order values converted to float32 (what the model uses). */
  float32(key: string): Float32Array;
  close(): void;
}

/** Decodes one IEEE half-precision value. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Reads element i of little-endian bytes of the given dtype as a number. */
function reader(dtype: DType, buf: Buffer): (i: number) => number {
  switch (dtype) {
    case 'float32': return (i) => buf.readFloatLE(4 * i);
    case 'float64': return (i) => buf.readDoubleLE(8 * i);
    case 'float16': return (i) => halfToFloat(buf.readUInt16LE(2 * i));
    case 'bfloat16': {
      const tmp = Buffer.alloc(4);
      return (i) => (tmp.writeUInt32LE(buf.readUInt16LE(2 * i) << 16 >>> 0, 0), tmp.readFloatLE(0));
    }
    case 'int64': return (i) => Number(buf.readBigInt64LE(8 * i));
    case 'int32': return (i) => buf.readInt32LE(4 * i);
    case 'int16': return (i) => buf.readInt16LE(2 * i);
    case 'int8': return (i) => buf.readInt8(i);
    case 'uint8':
    case 'bool': return (i) => buf[i];
  }
}

/** Gathers a strided view into C order. `read(j)` reads storage element j relative to `base`. */
function gather(shape: number[], stride: number[], base: number, read: (j: number) => number, out: { [i: number]: number; length: number }) {
  const n = out.length;
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  let off = base;
  for (let i = 0; i < n; i++) {
    out[i] = read(off);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      off += stride[d];
      if (idx[d] < shape[d]) break;
      off -= stride[d] * shape[d];
      idx[d] = 0;
    }
  }
}

/** A torch.save zip archive (the format of every official SAM 2 checkpoint). */
export class TorchCheckpoint implements Checkpoint {
  private readonly zip: ZipReader;
  private readonly prefix: string;
  private readonly tensors = new Map<string, TensorRef>();

  constructor(readonly path: string, source?: ByteSource) {
    const src = source ?? fileSource(path);
    const head = src.read(0, 4);
    if (head.length < 4 || head.readUInt32LE(0) !== 0x04034b50) {
      src.close();
      if (head[0] === 0x80) {
        throw new Sam2Error(
          'CHECKPOINT',
          `${path} uses the legacy (pre-1.6) torch.save format, which is not supported. Re-save it in the zip format: ` +
            `torch.save(torch.load(f), "new.pt") with torch >= 1.6.`,
        );
      }
      throw new Sam2Error('CHECKPOINT', `${path} is not a PyTorch zip checkpoint (or .safetensors file).`);
    }
    try {
      this.zip = new ZipReader(src, path);
      const pkl = [...this.zip.entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
      if (!pkl) throw new Sam2Error('CHECKPOINT', `${path} has no data.pkl: not a torch.save archive.`);
      this.prefix = pkl.slice(0, -'data.pkl'.length);
      const root = unpickle(this.zip.read(pkl), path);
      const dict = root instanceof Map && root.get('model') instanceof Map ? root.get('model') : root;
      if (!(dict instanceof Map)) throw new Sam2Error('CHECKPOINT', `${path} does not hold a state dict.`);
      for (const [k, v] of dict) {
        if (v && (v as TensorRef).kind === 'tensor') this.tensors.set(String(k), v as TensorRef);
      }
    } catch (e) {
      src.close();
      throw e;
    }
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  private ref(key: string): TensorRef {
    const t = this.tensors.get(key);
    if (!t) throw new Sam2Error('CHECKPOINT', `${this.path} has no tensor "${key}".`);
    return t;
  }

  info(key: string): TensorInfo {
    const t = this.ref(key);
    return { dtype: t.storage.dtype as DType, shape: t.shape };
  }

  private gatherInto<T extends { [i: number]: number; length: number }>(key: string, out: T): T {
    const t = this.ref(key);
    if (out.length === 0) return out;
    const dtype = t.storage.dtype as DType;
    const size = ELEMENT_SIZE[dtype];
    // the storage span this view touches
    let last = t.offset;
    t.shape.forEach((d, i) => (last += (d - 1) * t.stride[i]));
    if (last >= t.storage.numel) throw new Sam2Error('CHECKPOINT', `${this.path}: tensor "${key}" runs past its storage.`);
    const bytes = this.zip.readRange(`${this.prefix}data/${t.storage.key}`, t.offset * size, (last - t.offset + 1) * size);
    gather(t.shape, t.stride, 0, reader(dtype, bytes), out);
    return out;
  }

  values(key: string): Float64Array {
    return this.gatherInto(key, new Float64Array(this.ref(key).shape.reduce((a, b) => a * b, 1)));
  }

  float32(key: string): Float32Array {
    return this.gatherInto(key, new Float32Array(this.ref(key).shape.reduce((a, b) => a * b, 1)));
  }

  close(): void {
    this.zip.close();
  }
}

const SAFETENSORS_DTYPES: Record<string, DType> = {
  F32: 'float32', F64: 'float64', F16: 'float16', BF16: 'bfloat16', I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool',
};

/** A .safetensors file: an 8-byte header length, a JSON header, then raw little-endian data. */
export class SafetensorsCheckpoint implements Checkpoint {
  private readonly src: ByteSource;
  private readonly header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  private readonly dataStart: number;

  constructor(readonly path: string) {
    this.src = fileSource(path);
    const lenBuf = this.src.read(0, 8);
    const len = lenBuf.length === 8 ? Number(lenBuf.readBigUInt64LE(0)) : -1;
    if (len <= 0 || 8 + len > this.src.size) {
      this.src.close();
      throw new Sam2Error('CHECKPOINT', `${path} is not a valid .safetensors file (bad header length).`);
    }
    try {
      this.header = JSON.parse(this.src.read(8, len).toString('utf8'));
    } catch {
      this.src.close();
      throw new Sam2Error('CHECKPOINT', `${path} has a corrupt .safetensors header.`);
    }
    delete (this.header as Record<string, unknown>).__metadata__;
    this.dataStart = 8 + len;
  }

  keys(): string[] {
    return Object.keys(this.header);
  }

  info(key: string): TensorInfo {
    const h = this.header[key];
    if (!h) throw new Sam2Error('CHECKPOINT', `${this.path} has no tensor "${key}".`);
    const dtype = SAFETENSORS_DTYPES[h.dtype];
    if (!dtype) throw new Sam2Error('CHECKPOINT', `${this.path}: tensor "${key}" has unsupported dtype ${h.dtype}.`);
    return { dtype, shape: h.shape };
  }

  private gatherInto<T extends { [i: number]: number; length: number }>(key: string, out: T): T {
    const { dtype } = this.info(key);
    const [b, e] = this.header[key].data_offsets;
    if (e - b !== out.length * ELEMENT_SIZE[dtype] || this.dataStart + e > this.src.size) {
      throw new Sam2Error('CHECKPOINT', `${this.path}: tensor "${key}" is truncated or corrupt.`);
    }
    const read = reader(dtype, this.src.read(this.dataStart + b, e - b));
    for (let i = 0; i < out.length; i++) out[i] = read(i);
    return out;
  }

  values(key: string): Float64Array {
    return this.gatherInto(key, new Float64Array(this.info(key).shape.reduce((a, b) => a * b, 1)));
  }

  float32(key: string): Float32Array {
    return this.gatherInto(key, new Float32Array(this.info(key).shape.reduce((a, b) => a * b, 1)));
  }

  close(): void {
    this.src.close();
  }
}

/** Opens a checkpoint by its format (.safetensors by extension or magic; torch zip otherwise). */
export function readCheckpoint(path: string): Checkpoint {
  if (!fs.existsSync(path)) throw new Sam2Error('CHECKPOINT', `Checkpoint file not found: ${path}`);
  if (path.endsWith('.safetensors')) return new SafetensorsCheckpoint(path);
  return new TorchCheckpoint(path);
}
