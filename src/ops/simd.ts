/**
 * The wasm SIMD kernels of src/ops/simd_kernels.wat, instantiated on tfjs-backend-wasm's own
 * heap (its WebAssembly.Memory is imported, so they read and write tensors in place: no
 * copies). src/wasm_kernels.ts registers them as tf.js kernels; this module is tf-free.
 */
import { SIMD_KERNELS_SHARED, SIMD_KERNELS_UNSHARED } from './simd_kernels_wasm';

/** Kernel name of the fused LayerNorm (registered for wasm; layers/common.ts composes tf ops elsewhere). */
export const LAYER_NORM_KERNEL = 'Sam2LayerNorm';

/** Kernel name of the factored RoPE cross-attention scores (registered for wasm; see ropeScores). */
export const ROPE_SCORES_KERNEL = 'Sam2RopeScores';

/** The exported functions. Pointers are byte offsets into the heap; counts are values. */
export interface SimdKernels {
  /** out[i] = GELU(x[i]) (exact, erf form) for i < n. */
  gelu(x: number, out: number, n: number): void;
  /** LayerNorm of `rows` rows of c values (c a multiple of 4) with gamma and beta of c values. */
  layerNorm(x: number, gamma: number, beta: number, out: number, rows: number, c: number, eps: number): void;
  /**
   * c[g] = a[g] x b[g] for g < batch: [m, k] x [k, n] -> [m, n], n a multiple of 4; strideA and
   * strideB are the byte distances between items (0 repeats one), c's items are contiguous.
   */
  matmul(
    a: number,
    b: number,
    c: number,
    batch: number,
    m: number,
    k: number,
    n: number,
    strideA: number,
    strideB: number,
  ): void;
  /**
   * RoPE cross-attention scores against spatial memories, the keys' projection and rotation
   * factored into the queries (layers/rope_attention.ts): for `rows` queries, g [rows][xBlocks][65][4]
   * and h [rows][gridH][65] (entry 64: the key bias's part), u the memories' 64 key channels
   * [ceil(tCount / 4)][gridH][xBlocks][64][4 memories][4 positions]; writes memory t's scores to
   * columns t n .. t n + n - 1 (n = gridH * 4 xBlocks) of s's rows, ldS floats apart.
   */
  ropeScores(
    g: number,
    h: number,
    u: number,
    s: number,
    rows: number,
    xBlocks: number,
    gridH: number,
    tCount: number,
    ldS: number,
  ): void;
}

function decode(base64: string): ArrayBuffer {
  const text = atob(base64);
  const bytes = new Uint8Array(new ArrayBuffer(text.length));
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes.buffer;
}

const compiled = new Map<boolean, WebAssembly.Module | null>();

/** The compiled module for a shared or unshared heap (null: this engine cannot run it). */
export function simdModule(shared: boolean): WebAssembly.Module | null {
  let mod = compiled.get(shared);
  if (mod === undefined) {
    try {
      // ~1.5 KB: small enough for synchronous compilation on a browser's main thread too
      mod = new WebAssembly.Module(decode(shared ? SIMD_KERNELS_SHARED : SIMD_KERNELS_UNSHARED));
    } catch {
      mod = null; // no wasm SIMD (or no threads proposal for the shared variant)
    }
    compiled.set(shared, mod);
  }
  return mod;
}

/** False when SAM2_TFJS_SIMD=0 (Node): the kernels stay off and tf.js's own run instead. */
export function simdKernelsEnabled(): boolean {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.SAM2_TFJS_SIMD !== '0';
}

/** Whether `memory` is backed by a SharedArrayBuffer (the threaded build's heap). */
export function isShared(memory: WebAssembly.Memory): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
}

/** The kernels on `memory`, or undefined when this engine cannot run them. */
export function instantiateSimdKernels(memory: WebAssembly.Memory): SimdKernels | undefined {
  const mod = simdModule(isShared(memory));
  if (!mod) return undefined;
  try {
    return new WebAssembly.Instance(mod, { env: { memory } }).exports as unknown as SimdKernels;
  } catch {
    return undefined;
  }
}
