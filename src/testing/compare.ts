/** Comparison helpers for parity tests: errors relative to the reference tensor's scale. */

export interface ErrorReport {
  name: string;
  count: number;
  maxAbs: number;
  meanAbs: number;
  /** The reference's standard deviation used as the scale. */
  refStd: number;
  /** maxAbs / refStd. */
  relMax: number;
  /** meanAbs / refStd. */
  relMean: number;
  /** Flat index (in the compared arrays) of the largest error. */
  worstIndex: number;
  worstActual: number;
  worstExpected: number;
}

function std(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  const m = s / a.length;
  let v = 0;
  for (let i = 0; i < a.length; i++) v += (a[i] - m) ** 2;
  return Math.sqrt(v / a.length);
}

/**
 * Compares two equally long arrays. `refStd` defaults to the std of `expected`; pass the
 * fixture's recorded std when `expected` is a sample of a larger tensor.
 */
export function compareArrays(
  name: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  refStd?: number,
): ErrorReport {
  if (actual.length !== expected.length) {
    throw new Error(`${name}: length ${actual.length} != reference length ${expected.length}`);
  }
  let maxAbs = 0;
  let sum = 0;
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= maxAbs)) {
      // also catches NaN, which must fail loudly
      maxAbs = Number.isNaN(d) ? Infinity : d;
      worst = i;
    }
    sum += Number.isNaN(d) ? Infinity : d;
  }
  const scale = refStd ?? std(expected);
  const s = scale > 0 ? scale : 1;
  return {
    name,
    count: actual.length,
    maxAbs,
    meanAbs: sum / Math.max(1, actual.length),
    refStd: scale,
    relMax: maxAbs / s,
    relMean: sum / Math.max(1, actual.length) / s,
    worstIndex: worst,
    worstActual: actual[worst],
    worstExpected: expected[worst],
  };
}

export function formatReport(r: ErrorReport): string {
  return (
    `${r.name}: max|err| ${r.maxAbs.toExponential(3)} (${r.relMax.toExponential(2)} x std ${r.refStd.toPrecision(4)}), ` +
    `mean|err| ${r.meanAbs.toExponential(3)} (${r.relMean.toExponential(2)} x std) over ${r.count} values; ` +
    `worst at [${r.worstIndex}]: ours ${r.worstActual} vs ref ${r.worstExpected}`
  );
}

/** Throws with a readable message unless maxAbs <= tol x refStd. Returns the report. */
export function expectClose(
  name: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  relTol: number,
  refStd?: number,
): ErrorReport {
  const r = compareArrays(name, actual, expected, refStd);
  if (process.env.SAM2_QUIET_REPORTS !== '1') console.log(`      ${formatReport(r)}`);
  if (!(r.relMax <= relTol)) {
    throw new Error(`${formatReport(r)} -- exceeds tolerance ${relTol} x std`);
  }
  return r;
}

/** Intersection over union of two 0/1 masks of equal size (1 when both are empty). */
export function maskIoU(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maskIoU: sizes differ (${a.length} vs ${b.length})`);
  let inter = 0;
  let uni = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] !== 0;
    const y = b[i] !== 0;
    if (x && y) inter++;
    if (x || y) uni++;
  }
  return uni === 0 ? 1 : inter / uni;
}

/** Converts an NHWC flat array to NCHW order (N, H, W, C given). */
export function nhwcToNchw(data: ArrayLike<number>, n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(n * c * h * w);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < c; k++) out[((b * c + k) * h + y) * w + x] = data[((b * h + y) * w + x) * c + k];
  return out;
}

/**
 * Takes from an NHWC tensor the elements the fixtures sampled: every `every`-th element of the
 * NCHW-flattened tensor, starting at 0.
 */
export function sampleNchwFromNhwc(data: ArrayLike<number>, shapeNchw: readonly number[], every: number): Float32Array {
  const [n, c, h, w] = shapeNchw;
  const total = n * c * h * w;
  const out = new Float32Array(Math.ceil(total / every));
  for (let j = 0, i = 0; i < total; i += every, j++) {
    const x = i % w;
    const y = Math.floor(i / w) % h;
    const k = Math.floor(i / (w * h)) % c;
    const b = Math.floor(i / (w * h * c));
    out[j] = data[((b * h + y) * w + x) * c + k];
  }
  return out;
}
