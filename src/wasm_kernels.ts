/**
 * Kernel fixes for tfjs-backend-wasm 4.22, registered over its own (Node and browser builds).
 *
 * Slice: the backend's kernel reads its whole input to a JS copy (`readSync`) before copying
 * the slice out, so taking the B windows of a [B, n, d] tensor one by one costs O(B^2) copies
 * (~0.6 ms per slice of a 1.5 MB tensor). This one copies the slice straight from the wasm heap.
 *
 * Transpose: where single values move (the last axis changes), the backend's kernel walks the
 * input in output order without tiling (8-13 ns a value on the decoder's [B, 4096, 64] scores);
 * src/ops/transpose.ts moves them in cache-sized tiles (~2 ns a value). Transposes that keep
 * the last axis stay on the backend's kernel, which copies those runs at memcpy speed.
 *
 * Sam2Gelu: exact GELU in one pass over the heap instead of five kernels of which Erf runs on
 * one thread: the wasm SIMD kernel (src/ops/simd.ts, ~1.4 ns a value) where the engine runs it,
 * else the JavaScript loop of src/ops/gelu.ts (~5-10 ns a value).
 *
 * BatchMatMul: for batches of 2 or more, the backend's kernel runs a scalar loop (~2 GFLOP/s);
 * the SIMD kernel runs 4x8 register blocks at ~28 GFLOP/s a thread. Hiera's windowed attention
 * then runs as one batched product per head instead of one XNNPACK call per window (thousands
 * of calls of ~70 us each at 1024 px).
 *
 * Sam2LayerNorm: LayerNorm over the last axis as one SIMD kernel (mean, variance and the
 * normalisation from one read of each row) instead of nine tf.js kernels.
 *
 * Sam2RopeScores: RoPE cross-attention scores against spatial memories with the keys' projection
 * and rotation factored into the queries (layers/rope_attention.ts): 64 multiply-adds a score
 * instead of 256.
 *
 * GELU, LayerNorm, batched matMuls and RoPE scores run on two threads when the Node backend set up a helper thread
 * (the threaded build, src/wasm_helper.ts); results are bit-identical to one thread.
 */
import * as tf from '@tensorflow/tfjs';
import { GELU_KERNEL, geluRange } from './ops/gelu';
import {
  instantiateSimdKernels,
  LAYER_NORM_KERNEL,
  ROPE_SCORES_KERNEL,
  simdKernelsEnabled,
  type SimdKernels,
} from './ops/simd';
import { movesValues, transposeInto } from './ops/transpose';

/** The parts of tfjs-backend-wasm's BackendWasm that the kernels here use. */
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

let patched = false;

/** The helper thread's side of the kernels here (src/wasm_helper.ts's WasmHelperThread). */
export interface KernelHelper {
  /** GELU over whole heap views, half on each thread (false: not done). */
  gelu(x: Float32Array, out: Float32Array): boolean;
  /** SimdKernels.layerNorm split by rows (false: not done). */
  layerNorm(...args: Parameters<SimdKernels['layerNorm']>): boolean;
  /** SimdKernels.matmul split by batch items (false: not done). */
  matmul(...args: Parameters<SimdKernels['matmul']>): boolean;
  /** SimdKernels.ropeScores split by query rows (false: not done). */
  ropeScores(...args: Parameters<SimdKernels['ropeScores']>): boolean;
  /** Whether the helper runs the SIMD kernels (it is used only when the main thread agrees). */
  readonly usesSimd: boolean;
}
let helper: KernelHelper | undefined;
/** Below this many values GELU stays on one thread: handing half over costs more than it saves. */
const PARALLEL_MIN = 1 << 16;
/** Below this many values LayerNorm stays on one thread (~30 us of work). */
const PARALLEL_LAYERNORM_MIN = 1 << 16;
/** Below this many multiply-adds a batched matMul stays on one thread (~70 us of work). */
const PARALLEL_MATMUL_MIN = 1 << 20;

/** Lets GELU and batched matMuls split large tensors with another thread (undefined: one thread). */
export function setKernelHelper(h: KernelHelper | undefined): void {
  helper = h;
}

/** @internal The helper set by setKernelHelper (tests). */
export function getKernelHelper(): KernelHelper | undefined {
  return helper;
}

/** The SIMD kernels on each wasm backend's heap (null: none there). */
const simdByBackend = new WeakMap<object, SimdKernels | null>();

let simdOffForTests = false;

/** @internal Turns the SIMD kernels off (true) or back on, so tests can compare both paths. */
export function setSimdOffForTests(off: boolean): void {
  simdOffForTests = off;
}

/** The SIMD kernels on `backend`'s heap, made on first use; undefined when unavailable or off. */
function simdFor(backend: object): SimdKernels | undefined {
  if (simdOffForTests) return undefined;
  let kernels = simdByBackend.get(backend);
  if (kernels === undefined) {
    // the threaded build keeps its memory on the module, the stock build exports it
    const mod = (backend as { wasm?: { wasmMemory?: unknown; asm?: { memory?: unknown } } }).wasm;
    const memory = mod?.wasmMemory ?? mod?.asm?.memory;
    kernels = (simdKernelsEnabled() && memory instanceof WebAssembly.Memory && instantiateSimdKernels(memory)) || null;
    simdByBackend.set(backend, kernels);
  }
  return kernels ?? undefined;
}

/**
 * Whether the SIMD kernels run here (the current backend is wasm and has them): then batched
 * matMuls beat one rank-2 product per item (tf.js's own batched path is a scalar loop), and
 * LayerNorm runs as one kernel (LAYER_NORM_KERNEL).
 */
export function simdKernelsActive(): boolean {
  return tf.getBackend() === 'wasm' && simdFor(tf.backend()) !== undefined;
}

/** Registers the kernels above for the `wasm` backend (idempotent; call after loading it). */
export function patchWasmKernels(): void {
  if (patched) return;
  const original = tf.getKernel('Slice', 'wasm');
  if (!original) return; // tfjs-backend-wasm not loaded
  patched = true;
  const kernelFunc: tf.KernelFunc = (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype === 'string' || x.dtype === 'complex64') return original.kernelFunc(args);
    const backend = args.backend as unknown as WasmBackendLike;
    const { begin, size } = args.attrs as unknown as { begin: number | number[]; size?: number | number[] };
    const [start, extent] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
    const out = backend.makeOutput(extent, x.dtype);
    // views taken after makeOutput: allocating may grow (and replace) the heap's buffer
    const from = backend.typedArrayFromHeap(x);
    const to = backend.typedArrayFromHeap(out);
    const rank = x.shape.length;
    if (rank === 0 || to.length === 0) {
      if (rank === 0) to[0] = from[0];
      return out;
    }
    const strides = tf.util.computeStrides(x.shape);
    if (tf.slice_util.isSliceContinous(x.shape, start, extent)) {
      const offset = tf.slice_util.computeFlatOffset(start, strides);
      to.set(from.subarray(offset, offset + to.length));
      return out;
    }
    const last = extent[rank - 1];
    const width = x.shape[rank - 1];
    if (extent.every((e, a) => a === rank - 1 || (start[a] === 0 && e === x.shape[a]))) {
      // only the last axis is cut (e.g. 3 of 4 mask channels): rows at a fixed stride
      for (let o = 0, i = start[rank - 1]; o < to.length; o += last, i += width)
        for (let j = 0; j < last; j++) to[o + j] = from[i + j];
      return out;
    }
    // copy one run along the last axis per index of the outer axes; the source offset moves
    // by the stride of the axis that advances (an odometer over the outer axes)
    const runs = to.length / last;
    const index = new Array<number>(rank - 1).fill(0);
    let offset = start[rank - 1];
    for (let a = 0; a < rank - 1; a++) offset += start[a] * strides[a];
    // short runs (e.g. 3 of 4 mask channels) copy faster element by element than through
    // subarray views, which allocate an object per run
    const short = last < 32;
    for (let r = 0, o = 0; r < runs; r++, o += last) {
      if (short) for (let j = 0; j < last; j++) to[o + j] = from[offset + j];
      else to.set(from.subarray(offset, offset + last), o);
      for (let a = rank - 2; a >= 0; a--) {
        offset += strides[a];
        if (++index[a] < extent[a]) break;
        offset -= extent[a] * strides[a];
        index[a] = 0;
      }
    }
    return out;
  };
  tf.unregisterKernel('Slice', 'wasm');
  tf.registerKernel({ kernelName: 'Slice', backendName: 'wasm', kernelFunc });

  const originalTranspose = tf.getKernel('Transpose', 'wasm');
  if (originalTranspose) {
    tf.unregisterKernel('Transpose', 'wasm');
    tf.registerKernel({
      kernelName: 'Transpose',
      backendName: 'wasm',
      kernelFunc: (args) => {
        const x = args.inputs.x as tf.TensorInfo;
        const { perm } = args.attrs as unknown as { perm: number[] };
        // the backend's kernel copies runs that stay contiguous at memcpy speed
        if (x.dtype === 'string' || x.dtype === 'complex64' || !movesValues(x.shape, perm))
          return originalTranspose.kernelFunc(args);
        const backend = args.backend as unknown as WasmBackendLike;
        const out = backend.makeOutput(
          perm.map((a) => x.shape[a]),
          x.dtype,
        );
        // views taken after makeOutput (it may grow the heap)
        transposeInto(backend.typedArrayFromHeap(x), x.shape, perm, backend.typedArrayFromHeap(out));
        return out;
      },
    });
  }

  tf.registerKernel({
    kernelName: GELU_KERNEL,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      const backend = args.backend as unknown as WasmBackendLike;
      const simd = simdFor(backend);
      const out = backend.makeOutput(x.shape, 'float32');
      const to = backend.typedArrayFromHeap(out) as Float32Array;
      const from = backend.typedArrayFromHeap(x) as Float32Array;
      const n = to.length;
      // the helper only where it computes as this thread does (bit-identical either way)
      if (n >= PARALLEL_MIN && helper?.usesSimd === (simd !== undefined) && helper.gelu(from, to)) return out;
      if (simd) simd.gelu(from.byteOffset, to.byteOffset, n);
      else geluRange(from, to, 0, n);
      return out;
    },
  });

  tf.registerKernel({
    kernelName: LAYER_NORM_KERNEL,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const { x, gamma, beta } = args.inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
      const { eps } = args.attrs as unknown as { eps: number };
      const backend = args.backend as unknown as WasmBackendLike;
      const simd = simdFor(backend);
      const c = x.shape[x.shape.length - 1];
      // layers/common.ts checks these before running the kernel
      if (!simd || x.dtype !== 'float32' || c % 4 !== 0 || gamma.shape[0] !== c || beta.shape[0] !== c)
        throw new Error(`${LAYER_NORM_KERNEL}: needs the SIMD kernels and float32 rows of a multiple of 4 values`);
      const out = backend.makeOutput(x.shape, 'float32');
      const [px, pg, pb, po] = [x, gamma, beta, out].map((t) => backend.typedArrayFromHeap(t).byteOffset);
      const rows = tf.util.sizeFromShape(x.shape) / c;
      const parallel =
        rows * c >= PARALLEL_LAYERNORM_MIN && helper?.usesSimd && helper.layerNorm(px, pg, pb, po, rows, c, eps);
      if (!parallel) simd.layerNorm(px, pg, pb, po, rows, c, eps);
      return out;
    },
  });

  tf.registerKernel({ kernelName: ROPE_SCORES_KERNEL, backendName: 'wasm', kernelFunc: ropeScores });

  const originalMatMul = tf.getKernel('BatchMatMul', 'wasm');
  if (originalMatMul) {
    tf.unregisterKernel('BatchMatMul', 'wasm');
    tf.registerKernel({
      kernelName: 'BatchMatMul',
      backendName: 'wasm',
      kernelFunc: (args) => batchMatMul(args) ?? originalMatMul.kernelFunc(args),
    });
  }
}

/**
 * BatchMatMul on the SIMD kernel for batches of 2 or more without transpose flags and with n a
 * multiple of 4 (undefined: the backend's kernel runs it). Batch 1 stays on the backend's
 * kernel (XNNPACK on the pthread pool); its batched path is a scalar loop at ~2 GFLOP/s.
 */
function batchMatMul(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo | undefined {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = args.attrs as { transposeA?: boolean; transposeB?: boolean };
  const backend = args.backend as unknown as WasmBackendLike;
  if (transposeA || transposeB || a.dtype !== 'float32' || b.dtype !== 'float32') return undefined;
  if (a.shape.length < 2 || b.shape.length < 2) return undefined;
  const [m, k] = a.shape.slice(-2);
  const [kb, n] = b.shape.slice(-2);
  const batchShapeA = a.shape.slice(0, -2);
  const batchShapeB = b.shape.slice(0, -2);
  const batchA = tf.util.sizeFromShape(batchShapeA);
  const batchB = tf.util.sizeFromShape(batchShapeB);
  const batch = Math.max(batchA, batchB);
  // one side repeated, or the same batch shape on both (the backend checks everything else)
  const paired = tf.util.arraysEqual(batchShapeA, batchShapeB) || batchA === 1 || batchB === 1;
  if (k !== kb || batch < 2 || n % 4 !== 0 || !paired) return undefined;
  const simd = simdFor(backend);
  if (!simd) return undefined;
  const batchShape = tf.backend_util.assertAndGetBroadcastShape(batchShapeA, batchShapeB);
  const out = backend.makeOutput([...batchShape, m, n], 'float32');
  // offsets after makeOutput (allocating may grow the heap; offsets stay valid, views would not)
  const [pa, pb, pc] = [a, b, out].map((t) => backend.typedArrayFromHeap(t).byteOffset);
  const strideA = batchA === 1 ? 0 : m * k * 4;
  const strideB = batchB === 1 ? 0 : k * n * 4;
  const parallel =
    batch * m * k * n >= PARALLEL_MATMUL_MIN &&
    helper?.usesSimd &&
    helper.matmul(pa, pb, pc, batch, m, k, n, strideA, strideB);
  if (!parallel) simd.matmul(pa, pb, pc, batch, m, k, n, strideA, strideB);
  return out;
}

/**
 * Sam2RopeScores: inputs g [rows, xBlocks * 260], h [rows, gridH * 65], u (the packed memories,
 * see SimdKernels.ropeScores) and optionally p [rows, P] (scores of keys without rotation, copied
 * after the memories' columns); attrs xBlocks, gridH, tCount. Output [rows, tCount * n + P].
 */
function ropeScores(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const { g, h, u, p } = args.inputs as { g: tf.TensorInfo; h: tf.TensorInfo; u: tf.TensorInfo; p?: tf.TensorInfo };
  const { xBlocks, gridH, tCount } = args.attrs as unknown as { xBlocks: number; gridH: number; tCount: number };
  const backend = args.backend as unknown as WasmBackendLike;
  const simd = simdFor(backend);
  const rows = g.shape[0];
  const n = gridH * xBlocks * 4;
  const plain = p ? p.shape[1] : 0;
  const groups = Math.ceil(tCount / 4);
  // layers/rope_attention.ts shapes these; a mismatch would read past the tensors
  if (
    !simd ||
    g.shape[1] !== xBlocks * 260 ||
    h.shape[0] !== rows ||
    h.shape[1] !== gridH * 65 ||
    tf.util.sizeFromShape(u.shape) !== groups * n * 64 * 4 ||
    (p !== undefined && p.shape[0] !== rows)
  )
    throw new Error(
      `${ROPE_SCORES_KERNEL}: needs the SIMD kernels and inputs shaped as layers/rope_attention.ts makes them`,
    );
  const ld = tCount * n + plain;
  const out = backend.makeOutput([rows, ld], 'float32');
  const [pg, ph, pu, ps] = [g, h, u, out].map((t) => backend.typedArrayFromHeap(t).byteOffset);
  const parallel =
    rows * tCount * n * 64 >= PARALLEL_MATMUL_MIN &&
    rows >= 4 &&
    helper?.usesSimd &&
    helper.ropeScores(pg, ph, pu, ps, rows, xBlocks, gridH, tCount, ld);
  if (!parallel) simd.ropeScores(pg, ph, pu, ps, rows, xBlocks, gridH, tCount, ld);
  if (p && plain > 0) {
    // views after every allocation (the heap may have grown)
    const from = backend.typedArrayFromHeap(p) as Float32Array;
    const to = backend.typedArrayFromHeap(out) as Float32Array;
    for (let i = 0; i < rows; i++) to.set(from.subarray(i * plain, (i + 1) * plain), i * ld + tCount * n);
  }
  return out;
}
