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
 * Sam2Gelu: exact GELU in one pass over the heap (src/ops/gelu.ts), instead of five
 * kernels of which Erf runs on one thread; on two threads when the Node backend set up a helper
 * thread (the threaded build, src/wasm_helper.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { GELU_KERNEL, geluRange } from './ops/gelu';
import { movesValues, transposeInto } from './ops/transpose';

/** The parts of tfjs-backend-wasm's BackendWasm that the kernels here use. */
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

let patched = false;

/** GELU over whole heap views on more than one thread (false: not done); see setParallelGelu. */
type ParallelGelu = (x: Float32Array, out: Float32Array) => boolean;
let parallelGelu: ParallelGelu | undefined;
/** Below this many values GELU stays on one thread: handing half over costs more than it saves. */
const PARALLEL_MIN = 1 << 16;

/** Lets Sam2Gelu split large tensors with another thread (undefined: one thread). */
export function setParallelGelu(fn: ParallelGelu | undefined): void {
  parallelGelu = fn;
}

/** @internal The function set by setParallelGelu (tests). */
export function getParallelGelu(): ParallelGelu | undefined {
  return parallelGelu;
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
      const out = backend.makeOutput(x.shape, 'float32');
      const to = backend.typedArrayFromHeap(out) as Float32Array;
      const from = backend.typedArrayFromHeap(x) as Float32Array;
      if (!(to.length >= PARALLEL_MIN && parallelGelu?.(from, to))) geluRange(from, to, 0, to.length);
      return out;
    },
  });
}
