import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { backendInfo, initBackend } from '../../src/backend';
import { gelu } from '../../src/layers/common';
import { erfApprox, geluRange, GELU_KERNEL } from '../../src/ops/gelu';
import { WasmHelperThread } from '../../src/wasm_helper';
import { instantiateSimdKernels } from '../../src/ops/simd';
import { getKernelHelper, setKernelHelper } from '../../src/wasm_kernels';

/** erf by its Maclaurin series in double precision (accurate to ~1e-10 up to |z| = 4.5). */
function erfSeries(z: number): number {
  let term = z;
  let sum = z;
  for (let n = 1; n < 200 && Math.abs(term) > 1e-18; n++) {
    term *= (-z * z) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

/** GELU of the whole view on this thread, as the helper computes it (SIMD kernels or the JS loop). */
function oneThread(helper: WasmHelperThread, memory: WebAssembly.Memory, x: Float32Array): Float32Array {
  const n = x.length;
  const one = new Float32Array(n);
  if (!helper.usesSimd) {
    geluRange(x, one, 0, n);
    return one;
  }
  // the SIMD kernel writes into the heap: use the bytes right after x, then copy out
  const out = new Float32Array(memory.buffer, x.byteOffset + 4 * n, n);
  const saved = out.slice();
  instantiateSimdKernels(memory)!.gelu(x.byteOffset, out.byteOffset, n);
  one.set(out);
  out.set(saved);
  return one;
}

describe('GELU (one-pass kernel on wasm)', () => {
  before(async () => {
    await initBackend();
  });

  it('erf from the table is within 5e-10 of the series on [-4, 4], 2e-8 beyond (float32: 1), and odd', () => {
    let [inside, beyond] = [0, 0];
    for (let z = -4.5; z <= 4.5; z += 1 / 1024) {
      const err = Math.abs(erfApprox(z) - erfSeries(z));
      if (Math.abs(z) < 4) inside = Math.max(inside, err);
      else beyond = Math.max(beyond, err);
    }
    expect(inside).to.be.below(5e-10);
    expect(beyond).to.be.below(2e-8);
    expect(Math.fround(erfApprox(4.2))).to.equal(1);
    for (const z of [0.3, 1.7, 3.99, 7]) expect(erfApprox(-z)).to.equal(-erfApprox(z));
    expect(Math.abs(erfApprox(0))).to.be.below(5e-10);
  });

  it('matches the float32 tf-op composition within 2 ulp, keeps the shape, leaks nothing', function () {
    if (!tf.getKernel(GELU_KERNEL, tf.getBackend())) this.skip();
    const before = tf.memory().numTensors;
    const edges = [0, -0, 1e-30, -1e-30, 5.656, -5.656, -5.7, 12, -12, 100, -100];
    const x = tf.tidy(() =>
      tf.concat([tf.tensor1d(edges), tf.randomNormal([2 * 3 * 5 * 7 * 64 - edges.length], 0, 3, 'float32', 5)]),
    );
    const x4 = tf.reshape(x, [2, 3 * 5, 7, 64]);
    const ours = gelu(x4);
    expect(ours.shape).to.deep.equal(x4.shape);
    const want = tf.tidy(() => tf.mul(tf.mul(x4, 0.5), tf.add(tf.erf(tf.mul(x4, Math.SQRT1_2)), 1)));
    const [xs, a, b] = [x.dataSync(), ours.dataSync(), want.dataSync()];
    let bad = 0;
    for (let i = 0; i < xs.length; i++)
      if (Math.abs(a[i] - b[i]) > 2.4e-7 * Math.max(1, Math.abs(xs[i]))) {
        if (bad++ < 3) console.log(`      x ${xs[i]}: ours ${a[i]}, tf ops ${b[i]}`);
      }
    expect(bad).to.equal(0);
    // signed zeros as PyTorch's GELU: GELU(-0) = -0
    expect(Object.is(a[0], 0) && Object.is(a[1], -0) && Object.is(b[1], -0)).to.equal(true);
    tf.dispose([x, x4, ours, want]);
    // inside a tidy: the kernel's output is tracked like any op's
    tf.tidy(() => {
      gelu(tf.ones([4, 4]));
    });
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('runs on two threads on a shared heap: the same values as one thread, also after the heap grows or the helper stops', async () => {
    const memory = new WebAssembly.Memory({ initial: 64, maximum: 256, shared: true }); // 4 MB, up to 16 MB
    const helper = WasmHelperThread.start(memory);
    expect(helper, 'helper on a shared memory').to.not.equal(undefined);
    const n = 300_001;
    const check = (offset: number, what: string) => {
      const x = new Float32Array(memory.buffer, offset, n);
      const out = new Float32Array(memory.buffer, offset + 4 * n, n);
      for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.37) * 9 + (i % 7 === 0 ? -0 : 0);
      const one = oneThread(helper!, memory, x);
      out.fill(Number.NaN);
      expect(helper!.gelu(x, out), what).to.equal(true);
      let differ = 0;
      for (let i = 0; i < n; i++) if (!Object.is(out[i], one[i])) differ++;
      expect(differ, `${what}: values that differ from one thread`).to.equal(0);
    };
    try {
      for (let r = 0; r < 5; r++) check(0, `call ${r}`);
      memory.grow(128); // the worker sees the grown heap
      check(8 << 20, 'in the grown part of the heap');
      helper!.failNextTaskForTests();
      check(0, 'when the worker fails on its half (the main thread redoes it)');
      check(0, 'on the next call, with the worker back');
      // views of another memory, or of this one before it grew: not taken
      const other = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
      expect(helper!.gelu(new Float32Array(other.buffer, 0, 8), new Float32Array(other.buffer, 32, 8))).to.equal(false);
      const before = memory.buffer;
      memory.grow(1);
      expect(helper!.gelu(new Float32Array(before, 0, 8), new Float32Array(before, 32, 8))).to.equal(false);
      helper!.terminate();
      await new Promise((r) => setTimeout(r, 200));
      check(0, 'after the helper stopped (the main thread runs both halves)');
    } finally {
      helper!.terminate();
    }
    // not shared: no helper
    expect(WasmHelperThread.start(new WebAssembly.Memory({ initial: 1 }))).to.equal(undefined);
  });

  it('takes views beyond 2 GB of a 4 GB heap (float offsets past the Int32 range of byte offsets)', () => {
    // 2 GB + 4 MB; only the pages written are touched
    const memory = new WebAssembly.Memory({ initial: 32768 + 64, maximum: 65536, shared: true });
    const helper = WasmHelperThread.start(memory)!;
    try {
      const n = 200_000;
      const at = 2 ** 31 + 4096;
      const x = new Float32Array(memory.buffer, at, n);
      const out = new Float32Array(memory.buffer, at + 4 * n, n);
      for (let i = 0; i < n; i++) x[i] = Math.cos(i * 0.11) * 7;
      const one = oneThread(helper, memory, x);
      for (let r = 0; r < 3; r++) {
        out.fill(Number.NaN);
        expect(helper.gelu(x, out)).to.equal(true);
        expect(out.every((v, i) => Object.is(v, one[i]))).to.equal(true);
      }
    } finally {
      helper.terminate();
    }
  });

  it('the wasm kernel splits large tensors with the helper on the threaded build (same values as one thread)', function () {
    const helper = getKernelHelper();
    if (!tf.getKernel(GELU_KERNEL, tf.getBackend()) || !((backendInfo()?.wasmThreads?.threads ?? 1) > 1)) this.skip();
    expect(helper, 'threaded build: GELU has a helper thread').to.not.equal(undefined);
    let calls = 0;
    const x = tf.randomNormal([2, 256, 256, 8], 0, 3, 'float32', 7);
    try {
      setKernelHelper({
        usesSimd: helper!.usesSimd,
        gelu: (a, b) => (calls++, helper!.gelu(a, b)),
        matmul: (...args) => helper!.matmul(...args),
        layerNorm: (...args) => helper!.layerNorm(...args),
        ropeScores: (...args) => helper!.ropeScores(...args),
      });
      const two = gelu(x);
      setKernelHelper(undefined);
      const one = gelu(x);
      expect(calls).to.equal(1);
      const [a, b] = [two.dataSync(), one.dataSync()];
      let differ = 0;
      for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) differ++;
      expect(differ).to.equal(0);
      tf.dispose([two, one]);
    } finally {
      setKernelHelper(helper);
      x.dispose();
    }
  });
});
