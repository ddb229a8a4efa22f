import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { expectNoLeak } from '../helpers';
import { Linear, gelu } from '../../src/layers/common';
import { MLP_CHUNK_TOKENS, uncachedMlp, VitBlock } from '../../src/layers/vit_block';
import { setSimdOffForTests, simdKernelsActive } from '../../src/wasm_kernels';
import { Weights } from '../../src/weights';

describe('ViT block: the uncached, chunked MLP (big encoders)', () => {
  for (const bias of [true, false]) {
    it(`matches lin2(gelu(lin1(x))) over several token chunks (${bias ? 'with' : 'without'} biases), no leaks`, async () => {
      const lin1 = new Linear('t.lin1', 16, 64, bias);
      const lin2 = new Linear('t.lin2', 64, 16, bias);
      for (const [i, l] of [lin1, lin2].entries()) {
        for (const [v, seed] of [
          [l.weight, i + 1],
          [l.bias, i + 11],
        ] as const) {
          if (!v) continue;
          const t = tf.randomNormal(v.shape as number[], 0, 0.3, 'float32', seed);
          v.write(t);
          t.dispose();
        }
      }
      // 2.5 chunks of tokens, in an NHWC shape
      const rows = (MLP_CHUNK_TOKENS * 5) / 2 / 40;
      const x = tf.randomNormal([2, rows / 2, 40, 16], 0, 1, 'float32', 3);
      const want = tf.tidy(() => lin2.forward(gelu(lin1.forward(x))));
      await expectNoLeak('uncachedMlp', () => {
        const got = uncachedMlp(lin1, lin2, x);
        expect(got.shape).to.deep.equal(x.shape);
        const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]);
        got.dispose();
        expect(diff).to.be.at.most(1e-5);
      });
      tf.dispose([x, want]);
      lin1.disposeAll();
      lin2.disposeAll();
    });
  }
});

describe('ViT block: windowed attention on wasm', () => {
  it('one window at a time (XNNPACK, tf.js kernels) and the batched SIMD kernel agree (rounding only)', function () {
    if (!simdKernelsActive()) this.skip();
    const block = new VitBlock('b', { dim: 32, numHeads: 2, mlpRatio: 2, windowSize: 4, inputSize: 4 }, 7);
    const variables = block.nonTrainableWeights;
    const weights = new Weights(
      block.paramKeys().map((k, i) => [k, tf.randomNormal(variables[i].shape as number[], 0, 0.3, 'float32', i + 1)]),
    );
    block.loadFrom(weights);
    weights.dispose();
    const x = tf.randomNormal([1, 8, 8, 32], 0, 1, 'float32', 99) as tf.Tensor4D; // 4 windows of 4x4
    const batched = block.forward(x);
    setSimdOffForTests(true);
    let perWindow: tf.Tensor;
    try {
      perWindow = block.forward(x);
    } finally {
      setSimdOffForTests(false);
    }
    const [a, b] = [batched.dataSync(), perWindow!.dataSync()];
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    expect(worst).to.be.below(2e-5);
    expect(worst).to.be.above(0); // two different paths (summation orders), not one twice
    tf.dispose([x, batched, perWindow!]);
    block.disposeAll();
  });
});
