/**
 * The worker side of WasmHelperThread (src/wasm_helper.ts): waits for a task on the shared
 * control block, claims it unless the main thread already did, runs it and reports it done.
 */
import { workerData } from 'worker_threads';
import { geluRange } from './ops/gelu';
import { upsampleMaskRows, upsamplePlan } from './ops/mask_upsample';
import { instantiateSimdKernels, simdKernelsEnabled } from './ops/simd';
import { EPS_AT, OP, ropeScoreRowBytes, SLOT, THRESHOLD_AT } from './wasm_helper';

const { memory, ctrl, scratch } = workerData as {
  memory: WebAssembly.Memory;
  ctrl: SharedArrayBuffer;
  scratch?: SharedArrayBuffer;
};
const c = new Int32Array(ctrl, 0, THRESHOLD_AT / 4);
const threshold = new Float64Array(ctrl, THRESHOLD_AT, 1);
const eps = new Float64Array(ctrl, EPS_AT, 1);
// the main thread's helper makes its own instance the same way; a SIMD task without one fails,
// and the main thread then runs that half itself
const simd = simdKernelsEnabled() ? instantiateSimdKernels(memory) : undefined;

/** GELU of [FROM, TO) on the heap as it is now (memory.buffer follows its growth). */
function gelu(): void {
  const heap = memory.buffer;
  const n = c[SLOT.TO];
  const x = new Float32Array(heap, c[SLOT.X] * 4, n);
  const out = new Float32Array(heap, c[SLOT.OUT] * 4, n);
  geluRange(x, out, c[SLOT.FROM], n);
}

/** The SIMD GELU of [FROM, TO). */
function simdGelu(): void {
  if (!simd) throw new Error('no SIMD kernels in this worker');
  const from = c[SLOT.FROM];
  simd.gelu((c[SLOT.X] + from) * 4, (c[SLOT.OUT] + from) * 4, c[SLOT.TO] - from);
}

/** The SIMD matMul of batch items [FROM, TO). */
function simdMatmul(): void {
  if (!simd) throw new Error('no SIMD kernels in this worker');
  const [from, m, k, n, sa, sb] = [c[SLOT.FROM], c[SLOT.M], c[SLOT.K], c[SLOT.N], c[SLOT.SA], c[SLOT.SB]];
  simd.matmul(
    (c[SLOT.A] + from * sa) * 4,
    (c[SLOT.B] + from * sb) * 4,
    (c[SLOT.C] + from * m * n) * 4,
    c[SLOT.TO] - from,
    m,
    k,
    n,
    sa * 4,
    sb * 4,
  );
}

/** The SIMD LayerNorm of rows [FROM, TO). */
function simdLayerNorm(): void {
  if (!simd) throw new Error('no SIMD kernels in this worker');
  const [from, width] = [c[SLOT.FROM], c[SLOT.K]];
  simd.layerNorm(
    (c[SLOT.X] + from * width) * 4,
    c[SLOT.A] * 4,
    c[SLOT.B] * 4,
    (c[SLOT.OUT] + from * width) * 4,
    c[SLOT.TO] - from,
    width,
    eps[0],
  );
}

/** The SIMD RoPE scores of query rows [FROM, TO). */
function simdRopeScores(): void {
  if (!simd) throw new Error('no SIMD kernels in this worker');
  const [from, xBlocks, gridH, tCount, ldS] = [c[SLOT.FROM], c[SLOT.M], c[SLOT.K], c[SLOT.N], c[SLOT.SA]];
  const [gRow, hRow] = ropeScoreRowBytes(xBlocks, gridH);
  simd.ropeScores(
    c[SLOT.A] * 4 + from * gRow,
    c[SLOT.B] * 4 + from * hRow,
    c[SLOT.C] * 4,
    (c[SLOT.X] + from * ldS) * 4,
    c[SLOT.TO] - from,
    xBlocks,
    gridH,
    tCount,
    ldS,
  );
}

/** Rows [MID, H) of every mask: logits at the start of the scratch buffer, masks right after them. */
function upsample(): void {
  const [count, s, h, w, mid] = [c[SLOT.COUNT], c[SLOT.S], c[SLOT.H], c[SLOT.W], c[SLOT.MID]];
  const logits = new Float32Array(scratch!, 0, count * s * s);
  const rows = (h - mid) * w;
  const out = new Uint8Array(scratch!, count * s * s * 4, count * rows);
  out.fill(0);
  const plan = upsamplePlan(s, h, w, threshold[0]);
  for (let k = 0; k < count; k++) upsampleMaskRows(logits, k, plan, mid, h, out, k * rows);
}

let seen = 0;
for (;;) {
  // a timeout, so termination is never stuck behind an endless wait
  Atomics.wait(c, SLOT.SEQ, seen, 1000);
  const s = Atomics.load(c, SLOT.SEQ);
  if (s === seen) continue;
  seen = s;
  if (Atomics.compareExchange(c, SLOT.CLAIM, s - 1, s) !== s - 1) continue; // the main thread took it
  try {
    if (Atomics.load(c, SLOT.FAILED) === -1) throw new Error('failing as asked (test)');
    const op = c[SLOT.OP];
    if (op === OP.GELU) gelu();
    else if (op === OP.UPSAMPLE) upsample();
    else if (op === OP.SIMD_GELU) simdGelu();
    else if (op === OP.SIMD_MATMUL) simdMatmul();
    else if (op === OP.SIMD_ROPE_SCORES) simdRopeScores();
    else simdLayerNorm();
  } catch {
    // a claimed task must still be reported: the main thread redoes this half
    Atomics.store(c, SLOT.FAILED, s);
  }
  Atomics.store(c, SLOT.DONE, s);
  Atomics.notify(c, SLOT.DONE);
}
