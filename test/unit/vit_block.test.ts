import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { expectNoLeak } from '../helpers';
import { Linear, gelu } from '../../src/layers/common';
import { MLP_CHUNK_TOKENS, uncachedMlp } from '../../src/layers/vit_block';

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
