import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { upsampleLogits, upsampleMasks } from '../../src/ops/transforms';

describe('upsampleMasks (host bilinear upsampling + threshold)', () => {
  // smooth logits like a decoder's (a few blobs), plus a constant plane and a noisy one
  function planes(s: number): Float32Array {
    return tf.tidy(() => {
      const smooth = tf.image.resizeBilinear(tf.randomNormal([2, 9, 9, 1], 0, 6, 'float32', 7) as tf.Tensor4D, [s, s]);
      const flat = tf.fill([1, s, s, 1], -3);
      const noise = tf.randomNormal([1, s, s, 1], 0, 4, 'float32', 8);
      return tf.concat([smooth, flat, noise]).dataSync() as Float32Array;
    });
  }

  for (const [h, w, threshold] of [
    [600, 900, 0], // upsampling by a non-integer factor
    [300, 450, 0.5], // a threshold other than 0
    [97, 61, 0], // downsampling, odd sizes
  ] as const) {
    it(`matches resizeBilinear + threshold on the device at ${w}x${h} (threshold ${threshold})`, () => {
      const s = 64;
      const logits = planes(s);
      const masks = upsampleMasks(logits, 4, s, h, w, threshold);
      const [want, full] = tf.tidy(() => {
        const up = upsampleLogits(tf.tensor4d(logits, [4, s, s, 1]), h, w);
        return [tf.greater(up, threshold).dataSync(), up.dataSync()];
      });
      expect(masks).to.have.length(4);
      for (let k = 0; k < 4; k++) {
        expect(masks[k].length).to.equal(h * w);
        // the two sum in a different order: only pixels within float rounding of the threshold may differ
        for (let i = 0; i < h * w; i++)
          if (masks[k][i] !== want[k * h * w + i])
            expect(Math.abs(full[k * h * w + i] - threshold), `mask ${k} pixel ${i}`).to.be.below(1e-5);
      }
      expect(masks[2].every((v) => v === 0)).to.equal(true); // the constant -3 plane
      expect(masks[0].some((v) => v === 1) && masks[0].some((v) => v === 0)).to.equal(true);
    });
  }
});
