/**
 * Checkpoint readers: PyTorch `torch.save` zip archives (.pt/.pth) and `.safetensors`.
 * Both expose tensors by name and read each one lazily, so a large checkpoint is never held
 * in memory whole.
 */
import * as fs from 'fs';
import { Sam2Error } from '../errors';
import { unpickle, type TensorRef } from './pickle';
import { ZipReader, fileSource, type ByteSource } from './zip';

export type DType =
  'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

const ELEMENT_SIZE: Record<DType, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
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
    case 'float32':
      return (i) => buf.readFloatLE(4 * i);
    case 'float64':
      return (i) => buf.readDoubleLE(8 * i);
    case 'float16':
      return (i) => halfToFloat(buf.readUInt16LE(2 * i));
    case 'bfloat16': {
      const tmp = Buffer.alloc(4);
      return (i) => (tmp.writeUInt32LE((buf.readUInt16LE(2 * i) << 16) >>> 0, 0), tmp.readFloatLE(0));
    }
    case 'int64':
      return (i) => Number(buf.readBigInt64LE(8 * i));
    case 'int32':
      return (i) => buf.readInt32LE(4 * i);
    case 'int16':
      return (i) => buf.readInt16LE(2 * i);
    case 'int8':
      return (i) => buf.readInt8(i);
    case 'uint8':
    case 'bool':
      return (i) => buf[i];
  }
}

/** Gathers a strided view into C order. `read(j)` reads storage element j relative to `base`. */
function gather(
  shape: number[],
  stride: number[],
  base: number,
  read: (j: number) => number,
  out: { [i: number]: number; length: number },
) {
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

  constructor(
    readonly path: string,
    source?: ByteSource,
  ) {
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
      throw asCheckpointError(e, path);
    }
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  /** The tensor's view, checked to be well-formed and inside its storage before anything is allocated. */
  private ref(key: string): TensorRef {
    const t = this.tensors.get(key);
    if (!t) throw new Sam2Error('CHECKPOINT', `${this.path} has no tensor "${key}".`);
    if (this.checked.has(key)) return t;
    const bad = (why: string) =>
      new Sam2Error('CHECKPOINT', `${this.path}: tensor "${key}" is corrupt (${why}). Download the checkpoint again.`);
    const st = t.storage;
    const size = ELEMENT_SIZE[st.dtype as DType];
    if (!size) throw bad(`unknown storage type ${st.dtype}`);
    const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
    if (!Array.isArray(t.shape) || !Array.isArray(t.stride) || t.shape.length !== t.stride.length)
      throw bad('shape and stride disagree');
    if (!t.shape.every(isCount) || !t.stride.every(isCount) || !isCount(t.offset) || !isCount(st.numel))
      throw bad('negative or non-integer shape, stride or offset');
    const entry = this.zip.entries.get(`${this.prefix}data/${st.key}`);
    if (!entry) throw bad(`its storage data/${st.key} is missing`);
    if (st.numel * size > entry.size)
      throw bad(`its storage needs ${st.numel * size} bytes, the archive holds ${entry.size}`);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel > 0) {
      let last = t.offset;
      t.shape.forEach((d, i) => (last += (d - 1) * t.stride[i]));
      if (last >= st.numel) throw bad('it runs past its storage');
      // a view can repeat elements (stride 0), but not by more than the storage could hold unrepeated
      if (numel > 2 ** 31) throw bad(`${numel} elements`);
    }
    this.checked.add(key);
    return t;
  }

  private readonly checked = new Set<string>();

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
    const bytes = this.zip.readRange(
      `${this.prefix}data/${t.storage.key}`,
      t.offset * size,
      (last - t.offset + 1) * size,
      `tensor "${key}"`,
    );
    gather(t.shape, t.stride, 0, reader(dtype, bytes), out);
    return out;
  }

  values(key: string): Float64Array {
    return this.guard(() => this.gatherInto(key, new Float64Array(this.ref(key).shape.reduce((a, b) => a * b, 1))));
  }

  float32(key: string): Float32Array {
    return this.guard(() => this.gatherInto(key, new Float32Array(this.ref(key).shape.reduce((a, b) => a * b, 1))));
  }

  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw asCheckpointError(e, this.path);
    }
  }

  close(): void {
    this.zip.close();
  }
}

const SAFETENSORS_DTYPES: Record<string, DType> = {
  F32: 'float32',
  F64: 'float64',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};

/** A .safetensors file: an 8-byte header length, a JSON header, then raw little-endian data. */
export class SafetensorsCheckpoint implements Checkpoint {
  private readonly src: ByteSource;
  private readonly header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  private readonly dataStart: number;

  constructor(
    readonly path: string,
    source?: ByteSource,
  ) {
    this.src = source ?? fileSource(path);
    const lenBuf = this.src.read(0, 8);
    const len = lenBuf.length === 8 ? Number(lenBuf.readBigUInt64LE(0)) : -1;
    if (len <= 0 || 8 + len > this.src.size) {
      this.src.close();
      throw new Sam2Error('CHECKPOINT', `${path} is not a valid .safetensors file (bad header length).`);
    }
    this.dataStart = 8 + len;
    try {
      this.header = JSON.parse(this.src.read(8, len).toString('utf8'));
      checkSafetensorsHeader(this.header);
    } catch (e) {
      this.src.close();
      throw new Sam2Error(
        'CHECKPOINT',
        `${path} has a corrupt .safetensors header${e instanceof Sam2Error ? ` (${e.message})` : ''}. Download it again.`,
      );
    }
    delete (this.header as Record<string, unknown>).__metadata__;
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

  /** Element count, after checking the data is in the file (before anything is allocated). */
  private numel(key: string): number {
    this.info(key);
    if (this.dataStart + this.header[key].data_offsets[1] > this.src.size) {
      throw new Sam2Error('CHECKPOINT', `${this.path}: tensor "${key}" is truncated or corrupt.`);
    }
    return this.header[key].shape.reduce((a, b) => a * b, 1);
  }

  values(key: string): Float64Array {
    return this.gatherInto(key, new Float64Array(this.numel(key)));
  }

  float32(key: string): Float32Array {
    return this.gatherInto(key, new Float32Array(this.numel(key)));
  }

  close(): void {
    this.src.close();
  }
}

/** Checks every header entry (dtype, shape, offsets inside the data) so reads never meet a malformed one. */
function checkSafetensorsHeader(header: unknown): void {
  if (!header || typeof header !== 'object' || Array.isArray(header))
    throw new Sam2Error('CHECKPOINT', 'not a JSON object');
  for (const [key, h] of Object.entries(header as Record<string, unknown>)) {
    if (key === '__metadata__') continue;
    const e = h as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
    const ok =
      e &&
      typeof e === 'object' &&
      typeof e.dtype === 'string' &&
      SAFETENSORS_DTYPES[e.dtype] &&
      Array.isArray(e.shape) &&
      e.shape.every(isCount) &&
      Array.isArray(e.data_offsets) &&
      e.data_offsets.length === 2 &&
      e.data_offsets.every(isCount);
    if (!ok) throw new Sam2Error('CHECKPOINT', `bad entry for "${key}"`);
    const [b, end] = e.data_offsets as [number, number];
    const numel = (e.shape as number[]).reduce((a, x) => a * x, 1);
    if (b > end || end - b !== numel * ELEMENT_SIZE[SAFETENSORS_DTYPES[e.dtype as string]]) {
      throw new Sam2Error(
        'CHECKPOINT',
        `"${key}" has data offsets [${b}, ${end}] that do not fit its shape or the file`,
      );
    }
  }
}

/** Any failure while decoding a checkpoint's structure, as a CHECKPOINT error (a corrupt file must never surface as a raw TypeError). */
function asCheckpointError(e: unknown, path: string): Sam2Error {
  if (e instanceof Sam2Error) return e;
  return new Sam2Error('CHECKPOINT', `${path} is corrupt (${(e as Error).message}). Download it again.`);
}

/** Opens a checkpoint by its format (.safetensors by extension or magic; torch zip otherwise). */
export function readCheckpoint(path: string): Checkpoint {
  if (!fs.existsSync(path)) throw new Sam2Error('CHECKPOINT', `Checkpoint file not found: ${path}`);
  if (path.endsWith('.safetensors')) return new SafetensorsCheckpoint(path);
  return new TorchCheckpoint(path);
}
