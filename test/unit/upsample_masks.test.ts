import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { upsampleLogits, upsampleMasks } from '../../src/ops/transforms';
import { getParallelUpsample, setParallelUpsample, upsamplePlan } from '../../src/ops/mask_upsample';
import { backendInfo } from '../../src/backend';
import { WasmHelperThread } from '../../src/wasm_helper';

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

  const same = (a: Uint8Array[], b: Uint8Array[], what: string) => {
    expect(a.length, what).to.equal(b.length);
    a.forEach((m, k) => {
      let differ = 0;
      for (let i = 0; i < m.length; i++) if (m[i] !== b[k][i]) differ++;
      expect(differ, `${what}: mask ${k} pixels that differ`).to.equal(0);
    });
  };

  it('on two threads (the helper of the threaded wasm build) gives the same masks as one thread', function () {
    const parallel = getParallelUpsample();
    if (!((backendInfo()?.wasmThreads?.threads ?? 1) > 1)) this.skip();
    expect(parallel, 'threaded build: upsampling has a helper thread').to.be.a('function');
    const s = 64;
    const logits = planes(s);
    let calls = 0;
    try {
      for (const [h, w, threshold] of [
        [1201, 1800, 0], // odd height: the halves differ by a row
        [600, 900, 0.5],
      ] as const) {
        setParallelUpsample((...a) => (calls++, parallel!(...a)));
        const two = upsampleMasks(logits, 4, s, h, w, threshold);
        setParallelUpsample(undefined);
        same(two, upsampleMasks(logits, 4, s, h, w, threshold), `${w}x${h}`);
      }
      expect(calls).to.equal(2);
    } finally {
      setParallelUpsample(parallel);
    }
  });

  it('WasmHelperThread.upsample: the same masks, also when the main thread has to do both halves', async () => {
    const helper = WasmHelperThread.start(new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true }))!;
    const s = 64;
    const logits = planes(s);
    const [h, w] = [333, 517];
    const one = upsampleMasks(logits, 4, s, h, w, 0.25);
    const run = () => {
      const masks = Array.from({ length: 4 }, () => new Uint8Array(h * w));
      expect(helper.upsample(logits, 4, upsamplePlan(s, h, w, 0.25), masks)).to.equal(true);
      return masks;
    };
    try {
      for (let r = 0; r < 3; r++) same(run(), one, `call ${r}`);
      helper.failNextTaskForTests();
      same(run(), one, 'when the worker fails on its half');
      same(run(), one, 'on the next call');
      helper.terminate();
      await new Promise((r) => setTimeout(r, 200));
      same(run(), one, 'after the helper stopped');
    } finally {
      helper.terminate();
    }
  });
});
