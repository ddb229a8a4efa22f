import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { caseTensor, expectClose, expectNoLeak, sampleNchwFromNhwc, nhwcToNchw } from '../helpers';
import { tinyImageEncoder, tinyWeights, truckEncoding, truckInput } from '../models';
import { ImageEncoder } from '../../src/model/image_encoder';
import { MultiScaleBlock } from '../../src/layers/hiera_block';
import { setSimdOffForTests } from '../../src/wasm_kernels';
import { makeConfig, type SizeName } from '../../src/config';
import { formulaWeights, loadManifest } from '../../src/testing/manifest';
import { Weights } from '../../src/weights';
import { Sam2Error } from '../../src/errors';

/** Tolerance of the issue: max abs error <= 1e-3 x the reference tensor's std. */
const TOL = 1e-3;

function compareSampled(name: string, t: tf.Tensor4D) {
  const { data, stats } = caseTensor('image_truck', name);
  const ours = sampleNchwFromNhwc(t.dataSync(), stats.shape, stats.sampled_every ?? 1);
  expectClose(name, ours, data, TOL, stats.std);
}

function compareFull(name: string, t: tf.Tensor4D) {
  const { data, stats } = caseTensor('image_truck', name);
  const [n, h, w, c] = t.shape;
  expectClose(name, nhwcToNchw(t.dataSync(), n, h, w, c), data, TOL, stats.std);
}

describe('image encoder (Hiera-T + FPN) parity on image_truck', () => {
  it('matches every trunk stage', () => {
    const enc = truckEncoding();
    console.log(`      encode (trunk + neck) took ${enc.seconds.toFixed(1)} s`);
    enc.stages.forEach((s, i) => compareSampled(`trunk_stage${i}`, s));
  });

  it('matches every neck level and its sine position encoding', () => {
    const enc = truckEncoding();
    enc.neckFeatures.forEach((f, i) => compareSampled(`neck_feat${i}`, f));
    enc.neckPos.forEach((p, i) => compareSampled(`neck_pos${i}`, p));
  });

  it('matches the predictor features image_embed and high_res_feats0/1 in full', () => {
    const { features } = truckEncoding();
    compareFull('image_embed', features.imageEmbed);
    compareFull('high_res_feats0', features.highResFeats[0]);
    compareFull('high_res_feats1', features.highResFeats[1]);
  });

  it('forwardImage and imageFeatures agree with the staged path and leak no tensors', async () => {
    // the stage-by-stage path above is what the fixtures check; these are the public calls
    const enc = tinyImageEncoder();
    const x = truckInput();
    const ref = truckEncoding().features;
    await expectNoLeak('imageFeatures', () => {
      const f = enc.imageFeatures(x);
      expect(f.imageEmbed.shape).to.deep.equal([1, 64, 64, 256]);
      expect(tf.tidy(() => tf.max(tf.abs(tf.sub(f.imageEmbed, ref.imageEmbed))).dataSync()[0])).to.equal(0);
      tf.dispose([f.imageEmbed, ...f.highResFeats]);
    });
  });
});

describe('image encoder: every size, config checks and errors', () => {
  const sizes: SizeName[] = ['small', 'base_plus', 'large'];
  for (const size of sizes) {
    it(`builds ${size} from its manifest (every key consumed, shapes right) and runs at 128 px`, async () => {
      const manifest = loadManifest(`sam2.1_hiera_${size}`);
      const config = makeConfig('sam2.1', size, 128);
      const enc = new ImageEncoder(config);
      const owned = manifest.filter(
        ([k]) => k.startsWith('image_encoder.') || k.startsWith('sam_mask_decoder.conv_s') || k === 'no_mem_embed',
      );
      const keys = new Set(enc.paramKeys());
      expect(keys.size).to.equal(owned.length);
      for (const [k] of owned) expect(keys.has(k), k).to.equal(true);
      const weights = formulaWeights(owned);
      enc.loadFrom(weights);
      weights.dispose();
      const x = tf.randomNormal([1, 128, 128, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
      await expectNoLeak(`${size} forwardImage`, () => {
        const out = enc.forwardImage(x);
        expect(out.backboneFpn.map((t) => t.shape)).to.deep.equal([
          [1, 32, 32, 32],
          [1, 16, 16, 64],
          [1, 8, 8, 256],
        ]);
        for (const t of out.backboneFpn) expect(Number.isFinite(tf.tidy(() => tf.sum(t).dataSync()[0]))).to.equal(true);
        tf.dispose(out.backboneFpn);
      });
      x.dispose();
      enc.disposeAll();
    });
  }

  it('runs Hiera-T at 512 px with position embeddings and sizes following', () => {
    const enc = new ImageEncoder(makeConfig('sam2.1', 'tiny', 512));
    enc.loadFrom(tinyWeights());
    const x = tf.randomNormal([1, 512, 512, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const f = enc.imageFeatures(x);
    expect(f.imageEmbed.shape).to.deep.equal([1, 32, 32, 256]);
    expect(f.highResFeats.map((t) => t.shape)).to.deep.equal([
      [1, 128, 128, 32],
      [1, 64, 64, 64],
    ]);
    tf.dispose([x, f.imageEmbed, ...f.highResFeats]);
    enc.disposeAll();
  });

  it('windowed attention: one window at a time (XNNPACK), the batched SIMD kernel and the batched loop agree', () => {
    const enc = new ImageEncoder(makeConfig('sam2.1', 'tiny', 256));
    enc.loadFrom(tinyWeights());
    const x = tf.randomNormal([1, 256, 256, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const batchedSimd = enc.imageFeatures(x); // the SIMD kernels where the backend has them
    const saved = MultiScaleBlock.perWindowMinTokens;
    let perWindow: typeof batchedSimd;
    let batchedLoop: typeof batchedSimd;
    setSimdOffForTests(true); // tf.js's own kernels: per window on wasm (windows >= 49 tokens)
    try {
      perWindow = enc.imageFeatures(x);
      MultiScaleBlock.perWindowMinTokens = Infinity;
      batchedLoop = enc.imageFeatures(x);
    } finally {
      MultiScaleBlock.perWindowMinTokens = saved;
      setSimdOffForTests(false);
    }
    const outputs = (f: typeof batchedSimd) => [f.imageEmbed, ...f.highResFeats];
    const names = ['image_embed', 'high_res_feats0', 'high_res_feats1'];
    // the three sum in other orders: rounding only (the reference is ~5e-6 x std away)
    for (const other of [perWindow!, batchedLoop!])
      outputs(batchedSimd).forEach((t, i) => expectClose(names[i], t.dataSync(), outputs(other)[i].dataSync(), 2e-5));
    tf.dispose([x, ...outputs(batchedSimd), ...outputs(perWindow!), ...outputs(batchedLoop!)]);
    enc.disposeAll();
  });

  it('rejects inputs of the wrong rank, size or dtype, saying what was expected', () => {
    const enc = tinyImageEncoder();
    const bad = [tf.zeros([1024, 1024, 3]), tf.zeros([1, 512, 512, 3]), tf.zeros([1, 1024, 1024, 3], 'int32')];
    for (const x of bad) {
      expect(() => enc.forwardImage(x as tf.Tensor4D)).to.throw(Sam2Error, /float32 \[B, 1024, 1024, 3\]/);
    }
    tf.dispose(bad);
  });

  it('rejects weights that do not match the config, naming the tensor', () => {
    const enc = new ImageEncoder(makeConfig('sam2.1', 'small', 128));
    const manifest = loadManifest('sam2.1_hiera_tiny').filter(([k]) => k.startsWith('image_encoder.trunk.patch'));
    const w = formulaWeights(manifest);
    expect(() => enc.loadFrom(w)).to.throw(
      Sam2Error,
      /Missing weight "(no_mem_embed|image_encoder\.trunk\.pos_embed)": the weights do not match/,
    );
    w.dispose();
    const [key, shape] = loadManifest('sam2.1_hiera_base_plus').find(([k]) => k === 'image_encoder.trunk.pos_embed')!;
    const wrong = formulaWeights([[key, shape]]);
    // tiny's weights with base+'s background position embedding swapped in
    const mixed = new Weights(
      tinyWeights()
        .keys()
        .map((k) => [k, k === key ? wrong.get(k) : tinyWeights().get(k)]),
    );
    const tiny = new ImageEncoder(makeConfig('sam2.1', 'tiny', 128));
    try {
      expect(() => tiny.loadFrom(mixed)).to.throw(
        Sam2Error,
        /"image_encoder\.trunk\.pos_embed" has shape \[1,14,14,112\] but the model config expects \[1,7,7,96\]/,
      );
    } finally {
      wrong.dispose();
      tiny.disposeAll();
      enc.disposeAll();
    }
  });
});
