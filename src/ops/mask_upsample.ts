/**
 * Mask upsampling on the host: low-res logits to full-resolution 0/1 masks in one pass (no
 * full-size logits). No tf.js here, so the helper thread (src/wasm_helper_worker.ts) can load it.
 */

/** mask[from..to) = 1: a loop for short spans, fill() (a call with its own overhead) for long ones. */
function setSpan(mask: Uint8Array, from: number, to: number): void {
  if (to - from < 64) for (let i = from; i < to; i++) mask[i] = 1;
  else mask.fill(1, from, to);
}

/** Source samples of bilinear resampling from s to n points (half-pixel centers, clamped at the edges). */
function bilinearTaps(s: number, n: number): { lo: Int32Array; hi: Int32Array; frac: Float64Array } {
  const lo = new Int32Array(n);
  const hi = new Int32Array(n);
  const frac = new Float64Array(n);
  const scale = s / n;
  for (let i = 0; i < n; i++) {
    const f = scale * (i + 0.5) - 0.5;
    const l = Math.max(0, Math.floor(f));
    lo[i] = l;
    hi[i] = Math.min(s - 1, Math.ceil(f));
    frac[i] = f - l;
  }
  return { lo, hi, frac };
}

/**
 * Runs of output columns that interpolate between the same two source columns, as flat
 * [lo, hi, start, end] quadruples.
 */
function columnRuns(cols: { lo: Int32Array; hi: Int32Array }, w: number): Int32Array {
  const runs: number[] = [];
  for (let c = 0; c < w; c++) {
    const j = runs.length - 4;
    if (j >= 0 && runs[j] === cols.lo[c] && runs[j + 1] === cols.hi[c]) runs[j + 3] = c + 1;
    else runs.push(cols.lo[c], cols.hi[c], c, c + 1);
  }
  return Int32Array.from(runs);
}

/** What every row of an upsampling from s x s to h x w needs (computed once per call). */
export interface UpsamplePlan {
  s: number;
  h: number;
  w: number;
  threshold: number;
  rows: { lo: Int32Array; hi: Int32Array; frac: Float64Array };
  runs: Int32Array;
  colFrac: Float32Array;
}

export function upsamplePlan(s: number, h: number, w: number, threshold: number): UpsamplePlan {
  const cols = bilinearTaps(s, w);
  return {
    s,
    h,
    w,
    threshold,
    rows: bilinearTaps(s, h),
    runs: columnRuns(cols, w),
    colFrac: Float32Array.from(cols.frac),
  };
}

/**
 * Rows [r0, r1) of mask k (plane k of `logits`) into `dst` from `dstOffset` (row r at
 * dstOffset + (r - r0) * w). dst must be zero there: only pixels inside the mask are written.
 */
export function upsampleMaskRows(
  logits: Float32Array,
  k: number,
  plan: UpsamplePlan,
  r0: number,
  r1: number,
  dst: Uint8Array,
  dstOffset: number,
): void {
  const { s, w, threshold, rows } = plan;
  const line = new Float32Array(s);
  const plane = k * s * s;
  for (let r = r0; r < r1; r++) {
    if (interpolateRow(logits, plane + rows.lo[r] * s, plane + rows.hi[r] * s, rows.frac[r], s, threshold, line))
      maskRow(dst, dstOffset + (r - r0) * w, w, line, plan.runs, plan.colFrac, threshold);
  }
}

/**
 * Runs upsampleMasks on more than one thread (false: not done); set by the Node backend when it
 * has a helper thread (src/wasm_helper.ts).
 */
export type ParallelUpsample = (
  logits: Float32Array,
  count: number,
  plan: UpsamplePlan,
  masks: Uint8Array[],
) => boolean;
let parallelUpsample: ParallelUpsample | undefined;
/** Below this many output pixels the hand-over costs more than a second thread saves. */
const PARALLEL_MIN = 1 << 20;

/** Lets upsampleMasks share large outputs with another thread (undefined: one thread). */
export function setParallelUpsample(fn: ParallelUpsample | undefined): void {
  parallelUpsample = fn;
}

/** @internal The function set by setParallelUpsample (tests). */
export function getParallelUpsample(): ParallelUpsample | undefined {
  return parallelUpsample;
}

/**
 * Masks (logit > threshold) of `count` planar low-res logit maps [count][s*s], bilinearly
 * upsampled (as `upsampleLogits`) to h x w, computed on the host without full-size logits.
 * The upsampled row is piecewise linear between source columns, so a run of output columns
 * whose two source samples lie on the same side of the threshold is filled without
 * interpolating; rows with no sample above it stay zero. ~4x faster than resizing on the
 * device and reading the masks back, and it needs no full-size device memory. Large outputs
 * are shared with a helper thread when there is one (bit-identical: each pixel is computed the
 * same way on either thread).
 */
export function upsampleMasks(
  logits: Float32Array,
  count: number,
  s: number,
  h: number,
  w: number,
  threshold = 0,
): Uint8Array[] {
  const plan = upsamplePlan(s, h, w, threshold);
  const masks = Array.from({ length: count }, () => new Uint8Array(h * w));
  if (count * h * w >= PARALLEL_MIN && parallelUpsample?.(logits, count, plan, masks)) return masks;
  for (let k = 0; k < count; k++) upsampleMaskRows(logits, k, plan, 0, h, masks[k], 0);
  return masks;
}

// the loops are module-level functions on typed arrays (no closures or objects per
// call), so V8 keeps one optimized version instead of deoptimizing on every call

/** line = the source row interpolated between rows top and bottom; whether any sample is above threshold. */
function interpolateRow(
  logits: Float32Array,
  top: number,
  bottom: number,
  frac: number,
  s: number,
  threshold: number,
  line: Float32Array,
): boolean {
  let above = false;
  for (let x = 0; x < s; x++) {
    const a = logits[top + x];
    const v = a + (logits[bottom + x] - a) * frac;
    line[x] = v;
    if (v > threshold) above = true;
  }
  return above;
}

/** Sets the pixels of output row `row` (offset) whose interpolated value is above threshold. */
function maskRow(
  mask: Uint8Array,
  row: number,
  w: number,
  line: Float32Array,
  runs: Int32Array,
  colFrac: Float32Array,
  threshold: number,
): void {
  // runs inside the mask are merged into spans and set once: a fill() per short run costs
  // more than the run (noisy masks have hundreds of runs per row)
  let span = -1;
  for (let j = 0; j < runs.length; j += 4) {
    const a = line[runs[j]];
    const b = line[runs[j + 1]];
    const start = runs[j + 2];
    const end = runs[j + 3];
    const inA = a > threshold;
    const inB = b > threshold;
    if (inA && inB) {
      if (span < 0) span = start;
      continue;
    }
    if (span >= 0) setSpan(mask, row + span, row + start);
    span = -1;
    // one end inside: along the run the value moves monotonically from a to b, so the
    // inside pixels are a prefix (a above) or a suffix (b above); the rest stays 0
    if (inA) for (let c = start; c < end && a + (b - a) * colFrac[c] > threshold; c++) mask[row + c] = 1;
    else if (inB) for (let c = end - 1; c >= start && a + (b - a) * colFrac[c] > threshold; c--) mask[row + c] = 1;
  }
  if (span >= 0) setSpan(mask, row + span, row + w);
}
