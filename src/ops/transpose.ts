/**
 * Transposes on typed arrays (no tf.js: the wasm kernel in src/wasm_kernels.ts runs it on the
 * heap). tfjs-backend-wasm 4.22's Transpose computes every element's source index from scratch
 * (8-13 ns a value on the decoder's [B, 4096, 64] scores); here axes that stay together are
 * merged first, runs that stay contiguous are copied whole, and single values move in square
 * tiles that stay in the L1 cache (~2 ns a value).
 */

type Values = Float32Array | Int32Array | Uint8Array;

/** Square tiles of the 2-D transpose: 32 x 32 floats is 4 KB read and 4 KB written. */
const TILE = 32;

/**
 * `shape` and `perm` with size-1 axes dropped and axes that stay adjacent (in order) in the
 * output merged into one: [16, 4096, 64] with perm [0, 2, 1] stays as it is, [2, 3, 4, 5] with
 * perm [0, 2, 3, 1] becomes [2, 3, 20] with [0, 2, 1].
 */
export function simplifyTranspose(shape: number[], perm: number[]): { shape: number[]; perm: number[] } {
  const kept = perm.filter((a) => shape[a] !== 1);
  // renumber the kept input axes 0..k-1 in input order
  const inputOrder = [...kept].sort((a, b) => a - b);
  const rank = new Map(inputOrder.map((a, i) => [a, i]));
  const p = kept.map((a) => rank.get(a)!);
  const s = inputOrder.map((a) => shape[a]);
  // merge runs of output axes that are consecutive input axes
  const groups: number[][] = [];
  for (const a of p) {
    const last = groups[groups.length - 1];
    if (last && last[last.length - 1] + 1 === a) last.push(a);
    else groups.push([a]);
  }
  const byInput = [...groups].sort((a, b) => a[0] - b[0]);
  return {
    shape: byInput.map((g) => g.reduce((n, a) => n * s[a], 1)),
    perm: groups.map((g) => byInput.indexOf(g)),
  };
}

/**
 * Whether a transpose moves single values (its last output axis is not the input's last axis,
 * once axes are merged): those are the ones tiling speeds up. The others copy whole runs.
 */
export function movesValues(shape: number[], perm: number[]): boolean {
  const p = simplifyTranspose(shape, perm).perm;
  return p.length > 1 && p[p.length - 1] !== p.length - 1;
}

/** dst = src of `shape` transposed by `perm` (dst has the permuted shape, src's length). */
export function transposeInto(src: Values, shape: number[], perm: number[], dst: Values): void {
  const { shape: s, perm: p } = simplifyTranspose(shape, perm);
  const r = s.length;
  if (r <= 1) {
    dst.set(src.subarray(0, dst.length));
    return;
  }
  const inStrides = new Array<number>(r);
  inStrides[r - 1] = 1;
  for (let a = r - 2; a >= 0; a--) inStrides[a] = inStrides[a + 1] * s[a + 1];
  const outShape = p.map((a) => s[a]);
  // the input stride of each output axis, and the output stride of each input axis
  const outStrideOfInput = new Array<number>(r);
  let stride = 1;
  for (let o = r - 1; o >= 0; o--) {
    outStrideOfInput[p[o]] = stride;
    stride *= outShape[o];
  }
  // the core: input axis `a` (contiguous in src) and input axis `b` (contiguous in dst); the
  // same axis (runs that stay contiguous: copied whole) or a 2-D transpose between them
  const a = r - 1;
  const b = p[r - 1];
  const run = s[a];
  const outer = p.filter((x) => x !== a && x !== b);
  const counts = outer.map((x) => s[x]);
  const inStep = outer.map((x) => inStrides[x]);
  const outStep = outer.map((x) => outStrideOfInput[x]);
  const index = new Array<number>(outer.length).fill(0);
  const total = counts.reduce((n, c) => n * c, 1);
  let inBase = 0;
  let outBase = 0;
  for (let k = 0; k < total; k++) {
    if (a === b) {
      if (run < 32) for (let j = 0; j < run; j++) dst[outBase + j] = src[inBase + j];
      else dst.set(src.subarray(inBase, inBase + run), outBase);
    } else {
      tile2d(src, inBase, inStrides[b], dst, outBase, outStrideOfInput[a], s[b], s[a]);
    }
    // odometer over the outer axes
    for (let j = outer.length - 1; j >= 0; j--) {
      inBase += inStep[j];
      outBase += outStep[j];
      if (++index[j] < counts[j]) break;
      inBase -= counts[j] * inStep[j];
      outBase -= counts[j] * outStep[j];
      index[j] = 0;
    }
  }
}

/**
 * dst[outBase + j * outStride + i] = src[inBase + i * inStride + j] for i < rows, j < cols:
 * the transpose of a rows x cols block, tile by tile.
 */
function tile2d(
  src: Values,
  inBase: number,
  inStride: number,
  dst: Values,
  outBase: number,
  outStride: number,
  rows: number,
  cols: number,
): void {
  for (let i0 = 0; i0 < rows; i0 += TILE) {
    const i1 = Math.min(i0 + TILE, rows);
    for (let j0 = 0; j0 < cols; j0 += TILE) {
      const j1 = Math.min(j0 + TILE, cols);
      for (let j = j0; j < j1; j++) {
        let o = outBase + j * outStride + i0;
        let q = inBase + i0 * inStride + j;
        for (let i = i0; i < i1; i++, o++, q += inStride) dst[o] = src[q];
      }
    }
  }
}
