/**
 * A second thread for the loops we run in JavaScript: the GELU kernel on the wasm heap
 * (src/wasm_kernels.ts) and the mask upsampling of every prediction (src/ops/mask_upsample.ts).
 * XNNPACK's matMuls and convs already run on the threaded build's pthread pool; GELU is ~10%
 * of a decoder batch and of an encode, upsampling three masks to 1800x1200 ~12 ms of a click.
 * With the threaded build the heap is a shared WebAssembly.Memory, so a worker_thread can run
 * half of a GELU on the same memory; upsampling goes through a shared scratch buffer (the
 * logits in, the worker's rows out).
 *
 * One task at a time, handed over through a small shared control block (no messages, so no
 * event loop turns): the main thread writes the task, bumps SEQ and wakes the worker, runs its
 * own half, then waits for DONE. Whoever claims the second half first runs it (compareExchange
 * on CLAIM): when the worker has not woken up by the time the main thread finishes its half,
 * the main thread runs the rest itself, so a slow or stopped worker costs time, never a wrong
 * or missing result. Results are bit-identical to one thread (each value is computed the same
 * way on either thread).
 */
import * as path from 'path';
import { Worker } from 'worker_threads';
import { geluRange } from './ops/gelu';
import { upsampleMaskRows, type UpsamplePlan } from './ops/mask_upsample';
import { instantiateSimdKernels, simdKernelsEnabled, type SimdKernels } from './ops/simd';

/**
 * Int32 slots of the control block. GELU: X, OUT, FROM, TO (float indices); upsampling: COUNT,
 * S, H, W, MID; matMul: A, B, C (float indices), FROM and TO (the worker's batch items), M, K, N,
 * SA and SB (item strides in floats); LayerNorm: X, OUT, A (gamma), B (beta), FROM and TO (the
 * worker's rows), K (values a row); RoPE scores: A (g), B (h), C (u), X (s), FROM and TO (the worker's
 * rows), M (xBlocks), K (gridH), N (tCount), SA (ldS).
 */
export const SLOT = {
  SEQ: 0,
  CLAIM: 1,
  DONE: 2,
  OP: 3,
  X: 4,
  OUT: 5,
  FROM: 6,
  TO: 7,
  COUNT: 8,
  S: 9,
  H: 10,
  W: 11,
  MID: 12,
  /** The task the worker failed on (it still reports it DONE; the main thread redoes the half). */
  FAILED: 13,
  A: 14,
  B: 15,
  C: 16,
  M: 17,
  K: 18,
  N: 19,
  SA: 20,
  SB: 21,
} as const;
/** Byte offset of the Float64 slot (after the Int32 ones) holding the upsampling threshold. */
export const THRESHOLD_AT = 128;
/** Byte offset of the Float64 slot holding LayerNorm's epsilon. */
export const EPS_AT = THRESHOLD_AT + 8;
/** GELU in JavaScript, mask upsampling, and the wasm SIMD kernels (src/ops/simd.ts). */
export const OP = {
  GELU: 1,
  UPSAMPLE: 2,
  SIMD_GELU: 3,
  SIMD_MATMUL: 4,
  SIMD_LAYERNORM: 5,
  SIMD_ROPE_SCORES: 6,
} as const;
const CTRL_BYTES = EPS_AT + 8;

/** Bytes of one query's g and h rows for SimdKernels.ropeScores (65 floats per 4 positions / per grid row). */
export function ropeScoreRowBytes(xBlocks: number, gridH: number): [number, number] {
  return [xBlocks * 65 * 16, gridH * 65 * 4];
}
/** The scratch buffer for upsampling grows up to this (a larger task stays on one thread). */
const SCRATCH_MAX = 256 << 20;
/** A half takes well under a second: a worker this late is stuck, and is not used again. */
const WAIT_LIMIT_MS = 30_000;

export class WasmHelperThread {
  private readonly ctrl: Int32Array;
  private readonly threshold: Float64Array;
  private readonly eps: Float64Array;
  /** The SIMD kernels on this memory (undefined: this engine cannot run them, or they are off). */
  private readonly simd: SimdKernels | undefined;
  private seq = 0;
  /** Set when the worker stopped responding: everything stays on the main thread. */
  private broken = false;

  private constructor(
    private readonly worker: Worker,
    private readonly memory: WebAssembly.Memory,
    ctrl: SharedArrayBuffer,
    private readonly scratch: SharedArrayBuffer | undefined,
  ) {
    this.ctrl = new Int32Array(ctrl, 0, THRESHOLD_AT / 4);
    this.threshold = new Float64Array(ctrl, THRESHOLD_AT, 1);
    this.eps = new Float64Array(ctrl, EPS_AT, 1);
    this.simd = simdKernelsEnabled() ? instantiateSimdKernels(memory) : undefined;
  }

  /** Whether gelu and matmul run the wasm SIMD kernels (both threads alike). */
  get usesSimd(): boolean {
    return this.simd !== undefined;
  }

  /** Starts the worker on `memory` (a shared WebAssembly.Memory); undefined when it is not shared. */
  static start(memory: WebAssembly.Memory): WasmHelperThread | undefined {
    if (typeof SharedArrayBuffer === 'undefined' || !(memory.buffer instanceof SharedArrayBuffer)) return undefined;
    const ctrl = new SharedArrayBuffer(CTRL_BYTES);
    let scratch: SharedArrayBuffer | undefined;
    try {
      // growable (Node 20+); without it upsampling stays on one thread
      const Growable = SharedArrayBuffer as unknown as new (
        n: number,
        o: { maxByteLength: number },
      ) => SharedArrayBuffer;
      scratch = new Growable(0, { maxByteLength: SCRATCH_MAX });
      if (!(scratch as { growable?: boolean }).growable) scratch = undefined;
    } catch {
      scratch = undefined;
    }
    const ext = path.extname(__filename);
    const file = path.join(__dirname, `wasm_helper_worker${ext}`);
    // under tsx (tests, examples from source) the worker needs its loader too
    const tsx = ext === '.ts' ? `require(${JSON.stringify(require.resolve('tsx/cjs'))});` : '';
    const worker = new Worker(`${tsx}require(${JSON.stringify(file)});`, {
      eval: true,
      workerData: { memory, ctrl, scratch },
    });
    worker.unref(); // an idle helper must not keep the process alive
    worker.on('error', () => undefined); // a dead helper only means the main thread does all the work
    return new WasmHelperThread(worker, memory, ctrl, scratch);
  }

  /**
   * out[i] = GELU(x[i]) over the whole views, half on each thread. x and out are views of this
   * helper's memory as it is now; returns false (nothing done) for anything else (another
   * module's heap, a view taken before the heap grew). With the SIMD kernels both halves run
   * them (the worker's own instance on the same memory), else the JavaScript loop.
   */
  gelu(x: Float32Array, out: Float32Array): boolean {
    const n = out.length;
    if (this.broken || x.buffer !== this.memory.buffer || out.buffer !== x.buffer) return false;
    const mid = n >> 1;
    const c = this.ctrl;
    // float indices: a 4 GB heap has 2^30 of them, within an Int32 slot
    c[SLOT.X] = x.byteOffset / 4;
    c[SLOT.OUT] = out.byteOffset / 4;
    c[SLOT.FROM] = mid;
    c[SLOT.TO] = n;
    const simd = this.simd;
    if (simd) {
      const s = this.post(OP.SIMD_GELU);
      simd.gelu(x.byteOffset, out.byteOffset, mid);
      if (!this.workerDid(s)) simd.gelu(x.byteOffset + 4 * mid, out.byteOffset + 4 * mid, n - mid);
      return true;
    }
    const s = this.post(OP.GELU);
    geluRange(x, out, 0, mid);
    if (!this.workerDid(s)) geluRange(x, out, mid, n);
    return true;
  }

  /**
   * SimdKernels.matmul split by batch items, the first half on this thread (byte offsets into
   * this helper's memory; see src/ops/simd.ts). False (nothing done) without the SIMD kernels.
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
  ): boolean {
    const simd = this.simd;
    if (this.broken || !simd) return false;
    const mid = batch >> 1;
    const ctrl = this.ctrl;
    ctrl[SLOT.A] = a / 4;
    ctrl[SLOT.B] = b / 4;
    ctrl[SLOT.C] = c / 4;
    ctrl[SLOT.FROM] = mid;
    ctrl[SLOT.TO] = batch;
    ctrl[SLOT.M] = m;
    ctrl[SLOT.K] = k;
    ctrl[SLOT.N] = n;
    ctrl[SLOT.SA] = strideA / 4;
    ctrl[SLOT.SB] = strideB / 4;
    const s = this.post(OP.SIMD_MATMUL);
    simd.matmul(a, b, c, mid, m, k, n, strideA, strideB);
    if (!this.workerDid(s))
      simd.matmul(a + mid * strideA, b + mid * strideB, c + mid * m * n * 4, batch - mid, m, k, n, strideA, strideB);
    return true;
  }

  /**
   * SimdKernels.layerNorm split by rows, the first half on this thread (byte offsets into this
   * helper's memory). False (nothing done) without the SIMD kernels.
   */
  layerNorm(x: number, gamma: number, beta: number, out: number, rows: number, c: number, eps: number): boolean {
    const simd = this.simd;
    if (this.broken || !simd) return false;
    const mid = rows >> 1;
    const ctrl = this.ctrl;
    ctrl[SLOT.X] = x / 4;
    ctrl[SLOT.OUT] = out / 4;
    ctrl[SLOT.A] = gamma / 4;
    ctrl[SLOT.B] = beta / 4;
    ctrl[SLOT.FROM] = mid;
    ctrl[SLOT.TO] = rows;
    ctrl[SLOT.K] = c;
    this.eps[0] = eps;
    const s = this.post(OP.SIMD_LAYERNORM);
    simd.layerNorm(x, gamma, beta, out, mid, c, eps);
    if (!this.workerDid(s)) simd.layerNorm(x + mid * c * 4, gamma, beta, out + mid * c * 4, rows - mid, c, eps);
    return true;
  }

  /**
   * SimdKernels.ropeScores split by query rows, the first half on this thread (byte offsets into
   * this helper's memory). False (nothing done) without the SIMD kernels.
   */
  ropeScores(...args: Parameters<SimdKernels['ropeScores']>): boolean {
    const simd = this.simd;
    if (this.broken || !simd) return false;
    const [g, h, u, s, rows, xBlocks, gridH, tCount, ldS] = args;
    const mid = rows >> 1;
    const ctrl = this.ctrl;
    ctrl[SLOT.A] = g / 4;
    ctrl[SLOT.B] = h / 4;
    ctrl[SLOT.C] = u / 4;
    ctrl[SLOT.X] = s / 4;
    ctrl[SLOT.FROM] = mid;
    ctrl[SLOT.TO] = rows;
    ctrl[SLOT.M] = xBlocks;
    ctrl[SLOT.K] = gridH;
    ctrl[SLOT.N] = tCount;
    ctrl[SLOT.SA] = ldS;
    const seq = this.post(OP.SIMD_ROPE_SCORES);
    simd.ropeScores(g, h, u, s, mid, xBlocks, gridH, tCount, ldS);
    if (!this.workerDid(seq)) {
      const [gRow, hRow] = ropeScoreRowBytes(xBlocks, gridH);
      simd.ropeScores(g + mid * gRow, h + mid * hRow, u, s + mid * ldS * 4, rows - mid, xBlocks, gridH, tCount, ldS);
    }
    return true;
  }

  /**
   * upsampleMasks' rows: the first half of every mask on this thread, the second half on the
   * worker (into the scratch buffer, then copied). `masks`: count zero-filled h*w arrays.
   */
  upsample(logits: Float32Array, count: number, plan: UpsamplePlan, masks: Uint8Array[]): boolean {
    const { s: side, h, w } = plan;
    const mid = h >> 1;
    const inBytes = count * side * side * 4;
    const need = inBytes + count * (h - mid) * w;
    const scratch = this.scratch;
    if (this.broken || !scratch || need > SCRATCH_MAX) return false;
    if (scratch.byteLength < need) (scratch as unknown as { grow(n: number): void }).grow(need);
    new Float32Array(scratch, 0, count * side * side).set(logits.subarray(0, count * side * side));
    const c = this.ctrl;
    c[SLOT.COUNT] = count;
    c[SLOT.S] = side;
    c[SLOT.H] = h;
    c[SLOT.W] = w;
    c[SLOT.MID] = mid;
    this.threshold[0] = plan.threshold;
    const s = this.post(OP.UPSAMPLE);
    for (let k = 0; k < count; k++) upsampleMaskRows(logits, k, plan, 0, mid, masks[k], 0);
    if (!this.workerDid(s)) {
      for (let k = 0; k < count; k++) upsampleMaskRows(logits, k, plan, mid, h, masks[k], mid * w);
      return true;
    }
    const rows = (h - mid) * w;
    for (let k = 0; k < count; k++) masks[k].set(new Uint8Array(scratch, inBytes + k * rows, rows), mid * w);
    return true;
  }

  /** Publishes the task written in the control block (those stores happen before this one). */
  private post(op: number): number {
    const c = this.ctrl;
    const s = ++this.seq;
    c[SLOT.OP] = op;
    Atomics.store(c, SLOT.SEQ, s);
    Atomics.notify(c, SLOT.SEQ);
    return s;
  }

  /**
   * Whether the worker did the second half of task s. False when the main thread must do it:
   * the worker had not started it (the main thread claims it), failed on it, or stopped
   * responding (then it is not used again).
   */
  private workerDid(s: number): boolean {
    const c = this.ctrl;
    if (Atomics.load(c, SLOT.DONE) !== s && Atomics.compareExchange(c, SLOT.CLAIM, s - 1, s) === s - 1) return false;
    // the worker is on it: sleep until DONE changes to s (it holds an older task until then)
    const deadline = Date.now() + WAIT_LIMIT_MS;
    for (let d = Atomics.load(c, SLOT.DONE); d !== s; d = Atomics.load(c, SLOT.DONE)) {
      if (Date.now() > deadline) {
        this.broken = true;
        return false;
      }
      Atomics.wait(c, SLOT.DONE, d, 100);
    }
    return Atomics.load(c, SLOT.FAILED) !== s;
  }

  /** @internal Makes the worker fail on the next task it takes (tests of the recovery). */
  failNextTaskForTests(): void {
    Atomics.store(this.ctrl, SLOT.FAILED, -1);
  }

  /** Stops the worker (a later kernel call runs on the main thread only). */
  terminate(): void {
    void this.worker.terminate();
  }
}
