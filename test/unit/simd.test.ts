import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend';
import { gelu, LayerNorm } from '../../src/layers/common';
import { erfApprox } from '../../src/ops/gelu';
import { instantiateSimdKernels, ROPE_SCORES_KERNEL, type SimdKernels } from '../../src/ops/simd';
import { WasmHelperThread } from '../../src/wasm_helper';
import { simdKernelsActive, getKernelHelper, setKernelHelper, setSimdOffForTests } from '../../src/wasm_kernels';

const buildSimd = require('../../scripts/build_simd.js') as {
  generate(wat: string): Promise<string>;
  WAT: string;
  OUT: string;
};

/** GELU in double precision, erf from the table (within 2e-10). */
const geluExact = (x: number) => 0.5 * x * (1 + erfApprox(x * Math.SQRT1_2));

/** c = a x b per batch item, each output summed in order in float32 (as the kernel does). */
function hostMatmul(
  a: Float32Array,
  b: Float32Array,
  batch: number,
  m: number,
  k: number,
  n: number,
  repeatA: boolean,
  repeatB: boolean,
): Float32Array {
  const c = new Float32Array(batch * m * n);
  for (let g = 0; g < batch; g++) {
    const oa = repeatA ? 0 : g * m * k;
    const ob = repeatB ? 0 : g * k * n;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let p = 0; p < k; p++) acc = Math.fround(acc + Math.fround(a[oa + i * k + p] * b[ob + p * n + j]));
        c[(g * m + i) * n + j] = acc;
      }
  }
  return c;
}

/** A LayerNorm over c channels with weights away from 1 and 0. */
/**
 * SimdKernels.ropeScores in float32 on the host, in the kernel's order: bias terms, then
 * (g + h) u added channel by channel. Layouts as in src/ops/simd.ts.
 */
function hostRopeScores(
  g: Float32Array,
  h: Float32Array,
  u: Float32Array,
  rows: number,
  xBlocks: number,
  gridH: number,
  tCount: number,
  ldS: number,
): Float32Array {
  const f = Math.fround;
  const w = xBlocks * 4;
  const n = gridH * w;
  const s = new Float32Array(rows * ldS).fill(NaN);
  for (let i = 0; i < rows; i++)
    for (let t = 0; t < tCount; t++)
      for (let y = 0; y < gridH; y++)
        for (let x = 0; x < w; x++) {
          const [xb, lane] = [x >> 2, x & 3];
          const gAt = (c: number) => g[((i * xBlocks + xb) * 65 + c) * 4 + lane];
          const hAt = (c: number) => h[(i * gridH + y) * 65 + c];
          const uAt = (c: number) => u[((((t >> 2) * gridH + y) * xBlocks + xb) * 64 + c) * 16 + (t & 3) * 4 + lane];
          let acc = f(gAt(64) + hAt(64));
          for (let c = 0; c < 64; c++) acc = f(acc + f(f(gAt(c) + hAt(c)) * uAt(c)));
          s[i * ldS + t * n + y * w + x] = acc;
        }
  return s;
}

function layerNorm(c: number): LayerNorm {
  const norm = new LayerNorm('norm', c, 1e-6);
  tf.tidy(() => {
    norm.weight.write(tf.add(tf.randomNormal([c], 0, 0.5, 'float32', 9), 1));
    norm.bias.write(tf.randomNormal([c], 0, 0.5, 'float32', 10));
  });
  return norm;
}

/** How many values of a and b are not the same float (NaN equals NaN, -0 differs from 0). */
function differing(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) d++;
  return d;
}

describe('wasm SIMD kernels (src/ops/simd_kernels.wat)', () => {
  const memories = [
    ['unshared', new WebAssembly.Memory({ initial: 16, maximum: 64 })],
    ['shared', new WebAssembly.Memory({ initial: 16, maximum: 64, shared: true })],
  ] as const;

  it('the committed module is the assembled .wat (run node scripts/build_simd.js after editing it)', async () => {
    const want = await buildSimd.generate(fs.readFileSync(buildSimd.WAT, 'utf8'));
    expect(fs.readFileSync(buildSimd.OUT, 'utf8') === want, path.basename(buildSimd.OUT)).to.equal(true);
  });

  for (const [what, memory] of memories)
    it(`GELU on a ${what} heap: within 2.4e-7 x max(1, |x|) of double precision, the same at every position`, () => {
      const simd = instantiateSimdKernels(memory);
      expect(simd, 'this Node runs wasm SIMD').to.not.equal(undefined);
      const edges = [0, -0, 1e-30, -1e-30, 3.92 * Math.SQRT2, -5.5, -5.7, 12, -12, 100, -100, NaN, Infinity, -Infinity];
      const n = 40_003; // not a multiple of 4: the last 3 values go one at a time
      const x = new Float32Array(memory.buffer, 64, n);
      for (let i = 0; i < n; i++) x[i] = i < edges.length ? edges[i] : Math.sin(i * 0.731) * 3 * (1 + (i % 5));
      const outAt = 64 + 4 * n + 64;
      const out = new Float32Array(memory.buffer, outAt, n);
      simd!.gelu(x.byteOffset, outAt, n);
      let worst = 0;
      for (let i = 0; i < n; i++)
        if (Number.isFinite(x[i]))
          worst = Math.max(worst, Math.abs(out[i] - geluExact(x[i])) / Math.max(1, Math.abs(x[i])));
      expect(worst).to.be.below(2.4e-7);
      // signs and specials as PyTorch's float GELU: -0 -> -0, NaN, inf -> inf, -inf -> NaN (-inf * 0)
      expect([0, 1].map((i) => Object.is(out[i], x[i]))).to.deep.equal([true, true]);
      expect([out[11], out[12], out[13]]).to.deep.equal([NaN, Infinity, NaN]);
      expect(out[10]).to.satisfy((v: number) => Object.is(v, -0)); // GELU(-100): exactly -0, not -1e-5
      // every value alone (one lane of a partial vector) gives what it gave inside a vector
      const single = new Float32Array(memory.buffer, outAt + 4 * n, 1);
      let moved = 0;
      for (let i = 0; i < 400; i++) {
        simd!.gelu(x.byteOffset + 4 * i, single.byteOffset, 1);
        if (!Object.is(single[0], out[i])) moved++;
      }
      expect(moved).to.equal(0);
    });

  for (const [what, memory] of memories)
    it(`matMul on a ${what} heap: bit-identical to in-order float32 sums, for tails, repeats, k = 0 and k in slabs; writes only c`, () => {
      const simd = instantiateSimdKernels(memory) as SimdKernels;
      const heap = new Float32Array(memory.buffer);
      const cases: [number, number, number, number, boolean, boolean][] = [
        [1, 1, 1, 4, false, false],
        [2, 5, 7, 12, false, false], // rows 4 + 1, columns 8 + 4
        [3, 6, 9, 8, false, true], // b repeated
        [4, 3, 5, 16, true, false], // a repeated, rows fewer than a block
        [2, 9, 33, 20, false, false],
        [2, 3, 0, 8, false, false], // k = 0: zeros
        [2, 6, 600, 12, false, false], // k in slabs of 256: 256 + 256 + 88
        [1, 5, 512, 8, true, false], // two whole slabs
      ];
      for (const [batch, m, k, n, repeatA, repeatB] of cases) {
        const label = `${batch}x[${m},${k}]x[${k},${n}]${repeatA ? ' a repeated' : ''}${repeatB ? ' b repeated' : ''}`;
        const a = Float32Array.from({ length: (repeatA ? 1 : batch) * m * k }, (_, i) => Math.sin(i * 1.3) * 2);
        const b = Float32Array.from({ length: (repeatB ? 1 : batch) * k * n }, (_, i) => Math.cos(i * 0.7) - 0.2);
        const [pa, pb] = [256, 256 + 4 * a.length + 32];
        const pc = pb + 4 * b.length + 64;
        heap.set(a, pa / 4);
        heap.set(b, pb / 4);
        const size = batch * m * n;
        heap.fill(NaN, pc / 4 - 8, pc / 4 + size + 8); // guards on both sides
        simd.matmul(pa, pb, pc, batch, m, k, n, repeatA ? 0 : m * k * 4, repeatB ? 0 : k * n * 4);
        const got = heap.subarray(pc / 4, pc / 4 + size);
        expect(differing(got, hostMatmul(a, b, batch, m, k, n, repeatA, repeatB)), label).to.equal(0);
        const guards = [...heap.subarray(pc / 4 - 8, pc / 4), ...heap.subarray(pc / 4 + size, pc / 4 + size + 8)];
        expect(guards.every(Number.isNaN), `${label}: nothing written outside c`).to.equal(true);
      }
    });

  for (const [what, memory] of memories)
    it(`LayerNorm on a ${what} heap: within 2e-6 of double precision for every row width, writes only out`, () => {
      const simd = instantiateSimdKernels(memory) as SimdKernels;
      const heap = new Float32Array(memory.buffer);
      for (const [rows, c] of [
        [1, 4],
        [5, 12],
        [33, 64],
        [7, 96],
        [9, 256],
      ]) {
        const x = Float32Array.from({ length: rows * c }, (_, i) => 3 + 2 * Math.sin(i * 0.91) + (i % 3));
        const gamma = Float32Array.from({ length: c }, (_, i) => 1 + 0.5 * Math.cos(i));
        const beta = Float32Array.from({ length: c }, (_, i) => 0.3 * Math.sin(i * 2.1));
        const [px, pg, pb] = [256, 256 + 4 * x.length, 256 + 4 * x.length + 4 * c];
        const po = pb + 4 * c + 32;
        heap.set(x, px / 4);
        heap.set(gamma, pg / 4);
        heap.set(beta, pb / 4);
        heap.fill(NaN, po / 4 - 8, po / 4 + rows * c + 8);
        simd.layerNorm(px, pg, pb, po, rows, c, 1e-6);
        let worst = 0;
        for (let r = 0; r < rows; r++) {
          const row = Array.from(x.subarray(r * c, (r + 1) * c));
          const mean = row.reduce((a, v) => a + v, 0) / c;
          const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / c;
          for (let j = 0; j < c; j++) {
            const want = ((row[j] - mean) / Math.sqrt(variance + 1e-6)) * gamma[j] + beta[j];
            worst = Math.max(worst, Math.abs(heap[po / 4 + r * c + j] - want));
          }
        }
        expect(worst, `${rows} rows of ${c}`).to.be.below(2e-6);
        const guards = [
          ...heap.subarray(po / 4 - 8, po / 4),
          ...heap.subarray(po / 4 + rows * c, po / 4 + rows * c + 8),
        ];
        expect(guards.every(Number.isNaN), `${rows} rows of ${c}: nothing written outside out`).to.equal(true);
      }
    });

  for (const [what, memory] of memories)
    it(`RoPE scores on a ${what} heap: bit-identical to float32 sums in the kernel's order, for odd rows and partial groups; writes only the scores`, () => {
      const simd = instantiateSimdKernels(memory) as SimdKernels;
      const heap = new Float32Array(memory.buffer);
      for (const [rows, xBlocks, gridH, tCount] of [
        [1, 1, 1, 1],
        [3, 2, 3, 5], // an odd row count (the last query alone), a second group of 1
        [6, 1, 2, 8], // two whole groups
        [5, 3, 2, 3],
      ]) {
        const label = `${rows} rows, ${xBlocks * 4}x${gridH} grid, ${tCount} memories`;
        const n = gridH * xBlocks * 4;
        const ldS = tCount * n + 3; // 3 columns the kernel must not write
        const g = Float32Array.from({ length: rows * xBlocks * 260 }, (_, i) => Math.sin(i * 0.37));
        const h = Float32Array.from({ length: rows * gridH * 65 }, (_, i) => Math.cos(i * 0.53) * 0.5);
        const u = Float32Array.from({ length: Math.ceil(tCount / 4) * n * 64 * 4 }, (_, i) => Math.sin(i * 0.11 + 1));
        const [pg, ph] = [256, 256 + 4 * g.length + 16];
        const pu = ph + 4 * h.length + 16;
        const ps = pu + 4 * u.length + 64;
        heap.set(g, pg / 4);
        heap.set(h, ph / 4);
        heap.set(u, pu / 4);
        heap.fill(NaN, ps / 4 - 8, ps / 4 + rows * ldS + 8);
        simd.ropeScores(pg, ph, pu, ps, rows, xBlocks, gridH, tCount, ldS);
        const want = hostRopeScores(g, h, u, rows, xBlocks, gridH, tCount, ldS);
        const got = heap.subarray(ps / 4 - 8, ps / 4 + rows * ldS + 8);
        const expected = new Float32Array(got.length).fill(NaN);
        expected.set(want, 8);
        expect(differing(got, expected), label).to.equal(0);
      }
    });

  describe('as tf.js kernels on the wasm backend', () => {
    before(async function () {
      const info = await initBackend();
      if (info.tfBackend !== 'wasm' || !simdKernelsActive()) this.skip();
    });

    it('tf.matMul on batches: the SIMD kernel (bit-identical to in-order sums), broadcasting, fallbacks, no leaks', () => {
      const before = tf.memory().numTensors;
      const check = (aShape: number[], bShape: number[], transposeB = false) => {
        const a = tf.randomNormal(aShape, 0, 1, 'float32', 1);
        const b = tf.randomNormal(bShape, 0, 1, 'float32', 2);
        const c = tf.matMul(a, b, false, transposeB);
        // reference: every item as its own rank-2 product on the host
        const [m, k] = aShape.slice(-2);
        const n = transposeB ? bShape[bShape.length - 2] : bShape[bShape.length - 1];
        const batchA = tf.util.sizeFromShape(aShape.slice(0, -2));
        const batchB = tf.util.sizeFromShape(bShape.slice(0, -2));
        const bMat = transposeB
          ? tf.tidy(() => tf.transpose(tf.reshape(b, [batchB, n, k]), [0, 2, 1]))
          : tf.reshape(b, [batchB, k, n]);
        const batch = Math.max(batchA, batchB);
        const want = hostMatmul(
          a.dataSync() as Float32Array,
          bMat.dataSync() as Float32Array,
          batch,
          m,
          k,
          n,
          batchA === 1,
          batchB === 1,
        );
        const label = `${JSON.stringify(aShape)} x ${JSON.stringify(bShape)}${transposeB ? ' (b transposed)' : ''}`;
        expect(c.shape.slice(-2), label).to.deep.equal([m, n]);
        const got = c.dataSync();
        if (!transposeB && n % 4 === 0) expect(differing(got, want), label).to.equal(0);
        else for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i]), label).to.be.below(1e-4);
        tf.dispose([a, b, c, bMat]);
      };
      check([6, 16, 96], [6, 96, 64]); // Hiera's windows
      check([2, 3, 5, 7], [7, 8]); // b repeated for a rank-4 batch
      check([1, 5, 7], [3, 7, 12]); // a repeated
      check([4, 9, 7], [4, 7, 6]); // n not a multiple of 4: the backend's kernel
      check([3, 5, 8], [3, 12, 8], true); // transposed: the backend's kernel
      expect(tf.memory().numTensors).to.equal(before);
    });

    it('GELU, LayerNorm and Hiera-sized batches split with the helper thread: the same values as one thread, also when the worker fails', function () {
      const helper = getKernelHelper() as WasmHelperThread | undefined;
      if (!helper?.usesSimd) this.skip();
      const a = tf.randomNormal([64, 64, 96], 0, 1, 'float32', 3);
      const b = tf.randomNormal([64, 96, 64], 0, 1, 'float32', 4);
      const x = tf.randomNormal([3, 128, 128, 8], 0, 3, 'float32', 5);
      const norm = layerNorm(8);
      let calls = 0;
      try {
        setKernelHelper({
          usesSimd: true,
          gelu: (u, v) => (calls++, helper.gelu(u, v)),
          matmul: (...args) => (calls++, helper.matmul(...args)),
          layerNorm: (...args) => (calls++, helper.layerNorm(...args)),
          ropeScores: (...args) => (calls++, helper.ropeScores(...args)),
        });
        const [two, geluTwo, normTwo] = [tf.matMul(a, b), gelu(x), norm.forward(x)];
        helper.failNextTaskForTests();
        const failed = tf.matMul(a, b);
        expect(calls).to.equal(4);
        setKernelHelper(undefined);
        const [one, geluOne, normOne] = [tf.matMul(a, b), gelu(x), norm.forward(x)];
        expect(differing(two.dataSync(), one.dataSync())).to.equal(0);
        expect(differing(failed.dataSync(), one.dataSync())).to.equal(0);
        expect(differing(geluTwo.dataSync(), geluOne.dataSync())).to.equal(0);
        expect(differing(normTwo.dataSync(), normOne.dataSync())).to.equal(0);
        tf.dispose([two, geluTwo, normTwo, failed, one, geluOne, normOne]);
      } finally {
        setKernelHelper(helper);
        tf.dispose([a, b, x]);
        norm.disposeAll();
      }
    });

    it("RoPE scores as a tf.js kernel: the unrotated keys' scores after the memories, the helper split bit-identical (also when the worker fails), no leaks", function () {
      const helper = getKernelHelper() as WasmHelperThread | undefined;
      const [rows, xBlocks, gridH, tCount, plain] = [63, 2, 8, 5, 6]; // 1.3M multiply-adds: large enough to split
      const n = gridH * xBlocks * 4;
      const g = tf.randomNormal([rows, xBlocks * 260], 0, 1, 'float32', 11);
      const h = tf.randomNormal([rows, gridH * 65], 0, 1, 'float32', 12);
      const u = tf.randomNormal([2, gridH, xBlocks, 64, 4, 4], 0, 1, 'float32', 13);
      const p = tf.randomNormal([rows, plain], 0, 1, 'float32', 14);
      const attrs = { xBlocks, gridH, tCount } as unknown as tf.NamedAttrMap;
      const run = () => tf.engine().runKernel(ROPE_SCORES_KERNEL, { g, h, u, p }, attrs) as tf.Tensor2D;
      const before = tf.memory().numTensors;
      let calls = 0;
      try {
        setKernelHelper(undefined);
        const one = run();
        expect(one.shape).to.deep.equal([rows, tCount * n + plain]);
        const ld = tCount * n + plain;
        const want = hostRopeScores(
          g.dataSync() as Float32Array,
          h.dataSync() as Float32Array,
          u.dataSync() as Float32Array,
          rows,
          xBlocks,
          gridH,
          tCount,
          ld,
        );
        const pd = p.dataSync();
        for (let i = 0; i < rows; i++) want.set(pd.subarray(i * plain, (i + 1) * plain), i * ld + tCount * n);
        expect(differing(one.dataSync(), want), 'one thread vs host').to.equal(0);
        if (helper?.usesSimd) {
          setKernelHelper({
            usesSimd: true,
            gelu: (a, b) => helper.gelu(a, b),
            matmul: (...args) => helper.matmul(...args),
            layerNorm: (...args) => helper.layerNorm(...args),
            ropeScores: (...args) => (calls++, helper.ropeScores(...args)),
          });
          const two = run();
          helper.failNextTaskForTests();
          const failed = run();
          expect(calls).to.equal(2);
          expect(differing(two.dataSync(), want), 'two threads').to.equal(0);
          expect(differing(failed.dataSync(), want), 'worker failed: main thread redid its half').to.equal(0);
          tf.dispose([two, failed]);
        }
        one.dispose();
        expect(tf.memory().numTensors).to.equal(before);
        expect(() => tf.engine().runKernel(ROPE_SCORES_KERNEL, { g, h, u: p }, attrs)).to.throw(/shaped as/);
        expect(tf.memory().numTensors).to.equal(before);
      } finally {
        setKernelHelper(helper);
        tf.dispose([g, h, u, p]);
      }
    });

    it('tf.js GELU, LayerNorm and matMul without the SIMD kernels agree with them (rounding only), no leaks', () => {
      const x = tf.randomNormal([2, 64, 64, 16], 0, 3, 'float32', 6);
      const a = tf.randomNormal([8, 64, 96], 0, 1, 'float32', 7);
      const b = tf.randomNormal([8, 96, 64], 0, 1, 'float32', 8);
      const norm = layerNorm(16);
      const before = tf.memory().numTensors;
      const [g1, m1, n1] = [gelu(x), tf.matMul(a, b), norm.forward(x)];
      setSimdOffForTests(true);
      let g0: tf.Tensor, m0: tf.Tensor, n0: tf.Tensor;
      try {
        [g0, m0, n0] = [gelu(x), tf.matMul(a, b), norm.forward(x)];
      } finally {
        setSimdOffForTests(false);
      }
      expect(tf.memory().numTensors).to.equal(before + 6);
      const [na, nb] = [n1.dataSync(), n0.dataSync()];
      for (let i = 0; i < na.length; i++) expect(Math.abs(na[i] - nb[i])).to.be.below(1e-5);
      const xs = x.dataSync();
      const [ga, gb] = [g1.dataSync(), g0.dataSync()];
      for (let i = 0; i < xs.length; i++)
        expect(Math.abs(ga[i] - gb[i])).to.be.at.most(4.8e-7 * Math.max(1, Math.abs(xs[i])));
      const [ma, mb] = [m1.dataSync(), m0.dataSync()];
      for (let i = 0; i < ma.length; i++) expect(Math.abs(ma[i] - mb[i])).to.be.below(1e-4);
      tf.dispose([x, a, b, g1, m1, g0, m0, n1, n0]);
      norm.disposeAll();
    });
  });
});
