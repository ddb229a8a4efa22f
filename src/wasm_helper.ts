/**
 * A second thread for the kernels that run in JavaScript on the wasm heap (src/wasm_kernels.ts:
 * GELU). XNNPACK's matMuls and convs already run on the threaded build's pthread pool; GELU is
 * a JavaScript loop on the main thread, ~10% of a decoder batch and of an encode. With the
 * threaded build the heap is a shared WebAssembly.Memory, so a worker_thread can run half of
 * the loop on the same memory while the main thread runs the other half.
 *
 * One task at a time, handed over through a small shared Int32Array (no messages, so no event
 * loop turns): the main thread writes the task, bumps SEQ and wakes the worker, runs its own
 * half, then waits for DONE. Whoever claims the second half first runs it (compareExchange on
 * CLAIM): when the worker has not woken up by the time the main thread finishes its half, the
 * main thread runs the rest itself, so a slow or stopped worker costs time, never a wrong or
 * missing result. Results are bit-identical to one thread (the same loop over each element).
 */
import * as path from 'path';
import { Worker } from 'worker_threads';
import { geluRange } from './ops/gelu';

/** Int32 slots of the control block. */
export const SLOT = { SEQ: 0, CLAIM: 1, DONE: 2, X: 3, OUT: 4, FROM: 5, TO: 6 } as const;
const SLOTS = 8;

/** Below this many elements the hand-over (~20-50 us) costs more than half the loop saves. */
export const MIN_SPLIT = 1 << 16;

export class WasmHelperThread {
  private readonly ctrl: Int32Array;
  private seq = 0;

  private constructor(
    private readonly worker: Worker,
    ctrl: SharedArrayBuffer,
  ) {
    this.ctrl = new Int32Array(ctrl);
  }

  /** Starts the worker on `memory` (a shared WebAssembly.Memory); undefined when it is not shared. */
  static start(memory: WebAssembly.Memory): WasmHelperThread | undefined {
    if (typeof SharedArrayBuffer === 'undefined' || !(memory.buffer instanceof SharedArrayBuffer)) return undefined;
    const ctrl = new SharedArrayBuffer(SLOTS * 4);
    const ext = path.extname(__filename);
    const file = path.join(__dirname, `wasm_helper_worker${ext}`);
    // under tsx (tests, examples from source) the worker needs its loader too
    const tsx = ext === '.ts' ? `require(${JSON.stringify(require.resolve('tsx/cjs'))});` : '';
    const worker = new Worker(`${tsx}require(${JSON.stringify(file)});`, {
      eval: true,
      workerData: { memory, ctrl },
    });
    worker.unref(); // an idle helper must not keep the process alive
    worker.on('error', () => undefined); // a dead helper only means the main thread does all the work
    return new WasmHelperThread(worker, ctrl);
  }

  /**
   * out[i] = GELU(x[i]) over the whole views, half on each thread. x and out are views of the
   * shared heap; returns false (nothing done) for views of another buffer.
   */
  gelu(x: Float32Array, out: Float32Array): boolean {
    const n = out.length;
    if (!(x.buffer instanceof SharedArrayBuffer) || x.buffer !== out.buffer) return false;
    const mid = n >> 1;
    const c = this.ctrl;
    const s = ++this.seq;
    c[SLOT.X] = x.byteOffset >> 2;
    c[SLOT.OUT] = out.byteOffset >> 2;
    c[SLOT.FROM] = mid;
    c[SLOT.TO] = n;
    Atomics.store(c, SLOT.SEQ, s); // publishes the task (the stores above happen before it)
    Atomics.notify(c, SLOT.SEQ);
    geluRange(x, out, 0, mid);
    if (Atomics.load(c, SLOT.DONE) === s) return true;
    if (Atomics.compareExchange(c, SLOT.CLAIM, s - 1, s) === s - 1) {
      // the worker had not started: the rest is ours
      geluRange(x, out, mid, n);
      return true;
    }
    // the worker is on it: sleep until DONE changes (to s; it holds an older task until then)
    for (let d = Atomics.load(c, SLOT.DONE); d !== s; d = Atomics.load(c, SLOT.DONE))
      Atomics.wait(c, SLOT.DONE, d, 100);
    return true;
  }

  /** Stops the worker (a later kernel call runs on the main thread only). */
  terminate(): void {
    void this.worker.terminate();
  }
}
