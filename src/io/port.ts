/**
 * Porting an official SAM 2 / 2.1 checkpoint to TF.js weights: recognise the variant, check
 * every key and shape, convert layouts (io/layout.ts) and write a standard TF.js weights
 * manifest (model.json, tensors named by their PyTorch keys, plus the resolved config) with
 * shards of at most 4 MB. Tensors are read, converted and written one at a time.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Sam2Error } from '../errors';
import { detectConfig, type Sam2Config, type SizeName } from '../config';
import { detectSam1Config, isSam1Config, looksLikeSam1, type Sam1Config } from '../config_sam1';
import expectedKeys from './expected_keys.json';
import expectedKeysSam1 from './expected_keys_sam1.json';
import { tfShape, toTfLayout } from './layout';
import { readCheckpoint, type Checkpoint } from './torch_checkpoint';

export { MODEL_JSON } from './format';
import { MODEL_JSON } from './format';
export const SHARD_BYTES = 4 * 1024 * 1024;

export interface PortOptions {
  /** Write float16-quantized shards (half the size; read back as float32). */
  float16?: boolean;
  /** Called after each tensor with (done, total). Defaults to a progress line on a TTY. */
  onProgress?: (done: number, total: number) => void;
}

export interface PortResult {
  config: Sam2Config | Sam1Config;
  outDir: string;
  tensors: number;
  bytes: number;
  shards: number;
}

/** A weight entry of the TF.js weights manifest. */
export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32';
  quantization?: { dtype: 'float16'; original_dtype: 'float32' };
}

/** The model.json we write: a TF.js weights manifest plus our config. */
export interface PortedModelJson {
  format: 'sam2-tfjs-weights';
  version: 1;
  generatedBy: string;
  source: string;
  /** The resolved config (a SAM 1 config has `kind: 'sam1'`). */
  sam2Config: Sam2Config | Sam1Config;
  weightsManifest: { paths: string[]; weights: WeightSpec[] }[];
}

/** The keys and PyTorch shapes an official checkpoint of this variant holds. */
export function expectedKeyShapes(config: Sam2Config | Sam1Config): Map<string, number[]> {
  if (isSam1Config(config))
    return new Map((expectedKeysSam1 as unknown as Record<string, [string, number[]][]>)[config.size]);
  const list = (expectedKeys as Record<SizeName, [string, number[]][]>)[config.size];
  const v21Only = (k: string) => k.startsWith('obj_ptr_tpos_proj.') || k === 'no_obj_embed_spatial';
  return new Map(list.filter(([k]) => config.generation === 'sam2.1' || !v21Only(k)));
}

/** Fails with a WEIGHTS error naming missing, unexpected and mis-shaped keys. */
export function checkKeys(ckpt: Checkpoint, config: Sam2Config | Sam1Config): void {
  const expected = expectedKeyShapes(config);
  const keys = new Set(ckpt.keys());
  const missing = [...expected.keys()].filter((k) => !keys.has(k));
  const unexpected = [...keys].filter((k) => !expected.has(k));
  const wrong = [...keys]
    .filter((k) => expected.has(k))
    .map((k) => [k, ckpt.info(k).shape, expected.get(k)!] as const)
    .filter(([, a, b]) => a.join() !== b.join());
  const few = (xs: string[]) => xs.slice(0, 5).join(', ') + (xs.length > 5 ? `, ... (${xs.length})` : '');
  const problems = [
    missing.length ? `missing keys: ${few(missing)}` : '',
    unexpected.length ? `unexpected keys: ${few(unexpected)}` : '',
    wrong.length ? `wrong shapes: ${few(wrong.map(([k, a, b]) => `${k} [${a}] (expected [${b}])`))}` : '',
  ].filter(Boolean);
  if (problems.length) {
    throw new Sam2Error(
      'WEIGHTS',
      `${ckpt.path} does not match ${config.name}: ${problems.join('; ')}. Is it an official SAM 2 (or SAM 1) checkpoint?`,
    );
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> IEEE half bits, round to nearest even. */
export function floatToHalf(f: number): number {
  f32[0] = f;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

/** Writes a byte stream as numbered shards of at most SHARD_BYTES. */
class ShardWriter {
  readonly paths: string[] = [];
  private fd = -1;
  private used = 0;
  bytes = 0;

  constructor(private readonly dir: string) {}

  write(data: Uint8Array): void {
    let off = 0;
    while (off < data.length) {
      if (this.fd < 0 || this.used === SHARD_BYTES) this.next();
      const n = Math.min(SHARD_BYTES - this.used, data.length - off);
      fs.writeSync(this.fd, data, off, n);
      this.used += n;
      this.bytes += n;
      off += n;
    }
  }

  private next(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    const name = `group1-shard${this.paths.length + 1}.bin`;
    this.paths.push(name);
    this.fd = fs.openSync(path.join(this.dir, name), 'w');
    this.used = 0;
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

function ttyProgress(label: string) {
  if (!process.stderr.isTTY) return undefined;
  return (done: number, total: number) => {
    const w = 30;
    const fill = Math.round((done / total) * w);
    process.stderr.write(`\r${label} [${'#'.repeat(fill)}${'.'.repeat(w - fill)}] ${done}/${total}`);
    if (done === total) process.stderr.write('\n');
  };
}

/**
 * Ports a checkpoint (.pt/.pth torch zip, or .safetensors) to `outDir` (created if needed;
 * earlier shards there are replaced). Holds one tensor at a time in memory.
 */
export function portCheckpoint(input: string, outDir: string, options: PortOptions = {}): PortResult {
  if (fs.existsSync(outDir) && !fs.statSync(outDir).isDirectory()) {
    throw new Sam2Error(
      'INPUT',
      `${outDir} is a file, not a folder: give --out a folder (it will hold model.json and the weight shards).`,
    );
  }
  const ckpt = readCheckpoint(input);
  // written to a private staging folder, then moved in (model.json last): two ports of the same
  // model at once, or a failed port, never leave a folder whose manifest and shards disagree
  let stage = '';
  try {
    const shapes = new Map(ckpt.keys().map((k) => [k, ckpt.info(k).shape] as const));
    // SAM 1 (segment-anything ViT-B/L/H): a flat state dict with a ViT encoder
    const config = looksLikeSam1(shapes) ? detectSam1Config(shapes) : detectConfig(shapes);
    checkKeys(ckpt, config);
    try {
      fs.mkdirSync(outDir, { recursive: true });
      stage = fs.mkdtempSync(path.join(outDir, '.port-'));
    } catch (e) {
      throw new Sam2Error(
        'INPUT',
        `Cannot create ${outDir} (${(e as NodeJS.ErrnoException).code ?? e}): give --out a writable folder.`,
      );
    }
    const keys = [...expectedKeyShapes(config).keys()];
    const progress = options.onProgress ?? ttyProgress(`porting ${path.basename(input)}`);
    const shards = new ShardWriter(stage);
    const weights: WeightSpec[] = [];
    try {
      keys.forEach((key, i) => {
        const shape = ckpt.info(key).shape;
        const data = toTfLayout(key, shape, ckpt.float32(key));
        const spec: WeightSpec = { name: key, shape: tfShape(key, shape), dtype: 'float32' };
        if (options.float16) {
          spec.quantization = { dtype: 'float16', original_dtype: 'float32' };
          const half = new Uint16Array(data.length);
          for (let j = 0; j < data.length; j++) half[j] = floatToHalf(data[j]);
          shards.write(new Uint8Array(half.buffer));
        } else {
          shards.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        }
        weights.push(spec);
        progress?.(i + 1, keys.length);
      });
    } finally {
      shards.close();
    }
    const manifest: PortedModelJson = {
      format: 'sam2-tfjs-weights',
      version: 1,
      generatedBy: 'sam2-tfjs port',
      source: path.basename(input),
      sam2Config: config,
      weightsManifest: [{ paths: shards.paths, weights }],
    };
    fs.writeFileSync(path.join(stage, MODEL_JSON), JSON.stringify(manifest, null, 1));
    for (const f of shards.paths) fs.renameSync(path.join(stage, f), path.join(outDir, f));
    fs.renameSync(path.join(stage, MODEL_JSON), path.join(outDir, MODEL_JSON));
    // shards of an earlier, larger port
    for (const f of fs.readdirSync(outDir)) {
      const m = /^group1-shard(\d+)\.bin$/.exec(f);
      if (m && Number(m[1]) > shards.paths.length) fs.rmSync(path.join(outDir, f), { force: true });
    }
    return { config, outDir, tensors: weights.length, bytes: shards.bytes, shards: shards.paths.length };
  } finally {
    ckpt.close();
    if (stage) fs.rmSync(stage, { recursive: true, force: true });
  }
}
