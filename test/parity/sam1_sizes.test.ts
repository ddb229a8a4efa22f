import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { expectNoLeak } from '../helpers';
import { formulaWeights, loadManifest } from '../../src/testing/manifest';
import { SAM1_SIZE_NAMES, detectSam1Config, makeSam1Config } from '../../src/config_sam1';
import { Sam1Model } from '../../src/model/sam1/sam1';
import { SamPredictor } from '../../src/predictor/sam_predictor';

describe('SAM 1: every size builds from its manifest and runs at a small size', () => {
  for (const size of SAM1_SIZE_NAMES) {
    // ViT-H peaks at the 4 GB wasm heap even at 128 px (2.4 GB of weights + XNNPACK's packed
    // copies): after other suites have grown the heap it runs out of memory, so in the whole
    // suite it runs only with SAM2_SAM1_VIT_H=1 (alone it passes). Known limit, see README.
    const run = size === 'vit_h' && process.env.SAM2_SAM1_VIT_H !== '1' ? it.skip : it;
    run(`${size}: detects the size, consumes every key, encodes and decodes at 128 px`, async () => {
      const manifest = loadManifest(`sam_${size}`);
      const config = detectSam1Config(new Map(manifest.map(([k, s]) => [k, s] as const)), 128);
      expect(config).to.deep.equal(makeSam1Config(size, 128));
      const weights = formulaWeights(manifest);
      const model = new Sam1Model(config, weights);
      weights.dispose();
      try {
        expect(model.paramKeys().length).to.equal(manifest.length);
        const x = tf.randomNormal([1, 128, 128, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
        await expectNoLeak(`${size} encode`, () => {
          const f = model.imageEncoder.imageFeatures(x);
          expect(f.imageEmbed.shape).to.deep.equal([1, 8, 8, 256]);
          expect(Number.isFinite(tf.tidy(() => tf.sum(f.imageEmbed).dataSync()[0]))).to.equal(true);
          f.imageEmbed.dispose();
        });
        x.dispose();
        const predictor = new SamPredictor(model);
        const img = {
          data: new Uint8Array(90 * 60 * 3).map((_, i) => (i * 37) % 256),
          width: 90,
          height: 60,
          channels: 3 as const,
        };
        await predictor.setImage(img);
        const r = await predictor.predict({ pointCoords: [[40, 30]], pointLabels: [1], box: [10, 10, 70, 50] });
        expect(r.masks.length).to.equal(3);
        expect(r.masks[0].length).to.equal(90 * 60);
        expect(r.lowResLogits[0].length).to.equal(32 * 32);
        predictor.dispose();
      } finally {
        model.dispose();
      }
    });
  }
});
