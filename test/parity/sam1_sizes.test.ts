import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { expectNoLeak } from '../helpers';
import { formulaWeights, loadManifest } from '../../src/testing/manifest';
import { SAM1_SIZE_NAMES, detectSam1Config, makeSam1Config } from '../../src/config_sam1';
import { Sam1Model } from '../../src/model/sam1/sam1';
import { SamPredictor } from '../../src/predictor/sam_predictor';

describe('SAM 1: every size builds from its manifest and runs at a small size', () => {
  for (const size of SAM1_SIZE_NAMES) {
    it(`${size}: detects the size, consumes every key, encodes and decodes at 128 px`, async () => {
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

// ~5 min of compute and ~3 GB of wasm heap: opt-in with SAM2_SAM1_VIT_H_1024=1 (best alone:
// `SAM2_SAM1_VIT_H_1024=1 npx mocha test/parity/sam1_sizes.test.ts -g 1024`)
const runVitH1024 = process.env.SAM2_SAM1_VIT_H_1024 === '1' ? describe : describe.skip;
runVitH1024('SAM 1 ViT-H at 1024 px (opt-in: SAM2_SAM1_VIT_H_1024=1)', () => {
  it('encodes a 1024 px image within the 4 GB wasm heap, finite, without leaks', async () => {
    const weights = formulaWeights(loadManifest('sam_vit_h'));
    const model = new Sam1Model(makeSam1Config('vit_h', 1024), weights);
    weights.dispose();
    try {
      const x = tf.randomNormal([1, 1024, 1024, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
      await expectNoLeak('vit_h encode at 1024', () => {
        const y = model.imageEncoder.forward(x);
        expect(y.shape).to.deep.equal([1, 64, 64, 256]);
        const allFinite = tf.tidy(() => tf.all(tf.isFinite(y)).dataSync()[0]);
        y.dispose();
        expect(allFinite).to.equal(1);
      });
      // wasm memory only grows: its size is the peak (for the README's figure)
      // (the Memory object: the threaded build's HEAPU8 view goes stale when the heap grows)
      type Module = { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } };
      const wasm = (tf.backend() as unknown as { wasm?: Module }).wasm;
      const heap = (wasm?.wasmMemory ?? wasm?.asm?.memory)?.buffer.byteLength;
      if (heap) console.log(`      wasm heap peak ${(heap / 2 ** 30).toFixed(2)} GiB`);
      x.dispose();
    } finally {
      model.dispose();
    }
  });
});
