import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { caseMasks, caseTensor, expectClose, expectNoLeak, fixturePath, maskIoU, nhwcToNchw } from '../helpers';
import { tinyConfig, tinyImageEncoder, tinyImageModel, tinyWeights } from '../models';
import { MemoryEncoder } from '../../src/model/memory_encoder';
import {
  MemoryAttention,
  roundToBfloat16,
  sine1d,
  type PointerTokens,
  type SpatialMemory,
} from '../../src/model/memory_attention';
import { ParallelMemoryAttention } from '../../src/model/memory_attention_parallel';
import { packFactoredKeys } from '../../src/layers/rope_attention';
import { Linear, Mlp } from '../../src/layers/common';
import { SamPredictor } from '../../src/predictor/sam_predictor';
import { readImage } from '../../src/predictor/image_input';
import { preprocessVideoFrame } from '../../src/predictor/video_frames';
import { componentAreas } from '../../src/ops/components';
import { upsampleLogits } from '../../src/ops/transforms';

/**
 * The first memory of video_bedroom, rebuilt from its parts: frame 0's features, the click on
 * object 1 decoded like the video predictor does for a first click (multimask, best IoU), small
 * holes filled, upsampled, binarized and scaled, then the memory encoder.
 */
describe('memory encoder and memory attention parity on video_bedroom (first calls)', () => {
  it('matches first_memory_encoder_features/pos and first_memory_attention_out; the click mask matches step "a"', async () => {
    const [H, W] = [540, 960];
    const S = 1024;
    const x = preprocessVideoFrame(await readImage(fixturePath('videos/bedroom/00000.png')), S);
    const { backboneFpn } = tinyImageEncoder().forwardImage(x);
    const [s0, s1, top] = backboneFpn;
    const imageEmbed = tf.tidy(
      () => tf.add(top, tf.reshape(tinyImageEncoder().noMemEmbed, [1, 1, 1, -1])) as tf.Tensor4D,
    );
    const predictor = new SamPredictor(tinyImageModel());
    predictor.setImageFeatures({ imageEmbed, highResFeats: [s0, s1] }, [H, W]);
    const out = tf.tidy(() =>
      predictor.predictTensors(tf.tensor3d([[[(210 / W) * S, (350 / H) * S]]]), tf.tensor2d([[1]], [1, 1], 'int32'), {
        multimaskOutput: true,
      }),
    );
    const ious = out.ious.dataSync();
    expect(out.objectScoreLogits.dataSync()[0]).to.be.greaterThan(0);
    const best = ious.indexOf(Math.max(...ious));
    const lowRes = tf.tidy(
      () => tf.squeeze(tf.slice(out.lowResMasks, [0, 0, 0, best], [1, -1, -1, 1]), [0, 3]).dataSync() as Float32Array,
    );
    // fill background holes of <= 8 pixels (8-connected) with 0.1, as fill_holes_in_mask_scores
    const areas = componentAreas(
      lowRes.map((v) => (v <= 0 ? 1 : 0)),
      256,
      256,
    );
    const filled = lowRes.map((v, i) => (areas[i] > 0 && areas[i] <= 8 ? 0.1 : v));
    const filledT = tf.tensor4d(filled, [1, 256, 256, 1]);

    const videoMask = tf.tidy(() => tf.greater(upsampleLogits(filledT, H, W), 0).dataSync() as Uint8Array);
    const { masks: refA } = caseMasks('video_bedroom', 'a_masks');
    const iouA = maskIoU(videoMask, refA[0]);
    console.log(`      step a (object 1 click) mask IoU ${iouA.toFixed(5)}`);
    expect(iouA).to.be.at.least(0.995);

    const memEnc = new MemoryEncoder(tinyConfig());
    memEnc.loadFrom(tinyWeights());
    const maskForMem = tf.tidy(
      () => tf.add(tf.mul(tf.cast(tf.greater(upsampleLogits(filledT, S, S), 0), 'float32'), 20), -10) as tf.Tensor4D,
    );
    await expectNoLeak('memory encoder', () => tf.dispose(memEnc.forward(top, maskForMem).visionFeatures));
    const t0 = Date.now();
    const mem = memEnc.forward(top, maskForMem);
    console.log(`      memory encoder: ${Date.now() - t0} ms`);
    const feats = caseTensor('video_bedroom', 'first_memory_encoder_features');
    expectClose(
      'first_memory_encoder_features',
      nhwcToNchw(mem.visionFeatures.dataSync(), 1, 64, 64, 64),
      feats.data,
      1e-3,
      feats.stats.std,
    );
    const pos = caseTensor('video_bedroom', 'first_memory_encoder_pos');
    expectClose(
      'first_memory_encoder_pos',
      nhwcToNchw(mem.visionPosEnc.dataSync(), 1, 64, 64, 64),
      pos.data,
      1e-3,
      pos.stats.std,
    );

    // first memory attention: frame 1 of object 1 attends to frame 0's memory and object pointer
    const model = tinyImageModel();
    const tokens = tf.tidy(() => {
      const { sparse, dense } = model.promptEncoder.forward({
        points: {
          coords: tf.tensor3d([[[(210 / W) * S, (350 / H) * S]]]),
          labels: tf.tensor2d([[1]], [1, 1], 'int32'),
        },
      });
      const o = model.maskDecoder.forward({
        imageEmbeddings: imageEmbed,
        imagePe: model.promptEncoder.getDensePe(),
        sparsePromptEmbeddings: sparse,
        densePromptEmbeddings: dense,
        multimaskOutput: true,
        repeatImage: false,
        highResFeatures: [s0, s1],
      });
      return tf.squeeze(tf.slice(o.samTokensOut, [0, best, 0], [1, 1, 256]), [0]) as tf.Tensor2D; // [1, 256]
    });
    const w = tinyWeights();
    const objPtrProj = new Mlp('obj_ptr_proj', 256, 256, 256, 3);
    const tposProj = new Linear('obj_ptr_tpos_proj', 256, 64);
    objPtrProj.loadFrom(w);
    tposProj.loadFrom(w);
    const memAttn = new MemoryAttention(tinyConfig());
    memAttn.loadFrom(w);
    const x1 = preprocessVideoFrame(await readImage(fixturePath('videos/bedroom/00001.png')), S);
    const f1 = tinyImageEncoder().forwardImage(x1);
    const t1 = Date.now();
    const attnOut = tf.tidy(() => {
      const objPtr = objPtrProj.forward(tokens) as tf.Tensor2D; // object present: no no_obj_ptr mix
      const stored = tf.tensor2d(roundToBfloat16(mem.visionFeatures.dataSync() as Float32Array), [4096, 64]);
      const tpos = tf.reshape(w.get('maskmem_tpos_enc'), [7, 64]);
      const memPos = tf.add(tf.reshape(mem.visionPosEnc, [4096, 64]), tf.slice(tpos, [6, 0], [1, 64]));
      const ptrPos = tposProj.forward(tf.tensor2d(sine1d([1 / 7], 256), [1, 256])); // t_diff 1 over max 7
      const memory = tf.concat([stored, tf.reshape(objPtr, [4, 64])]) as tf.Tensor2D;
      const memoryPos = tf.concat([memPos, tf.tile(ptrPos, [4, 1])]) as tf.Tensor2D;
      return memAttn.forward(
        tf.reshape(f1.backboneFpn[2], [4096, 256]) as tf.Tensor2D,
        tf.reshape(f1.visionPosEnc[2], [4096, 256]) as tf.Tensor2D,
        memory,
        memoryPos,
        4,
      );
    });
    console.log(`      memory attention (1 memory frame + 1 pointer): ${Date.now() - t1} ms`);
    const ref = caseTensor('video_bedroom', 'first_memory_attention_out');
    expectClose('first_memory_attention_out', attnOut.dataSync(), ref.data, 1e-3, ref.stats.std);
    tf.dispose([
      x,
      x1,
      ...f1.backboneFpn,
      ...backboneFpn,
      imageEmbed,
      out.lowResMasks,
      out.ious,
      out.objectScoreLogits,
      filledT,
      maskForMem,
      mem.visionFeatures,
      tokens,
      attnOut,
    ]);
    predictor.dispose();
    for (const l of [memEnc, memAttn, objPtrProj, tposProj]) l.disposeAll();
  });
});

describe('memory attention on two threads (worker), with cached memory keys, and factored', () => {
  const n = 1024; // a 32x32 grid: a 512 px frame
  let att: MemoryAttention;
  /** forwardBank with every layer's keys as keysT [d, M] (the direct products, as the worker computes). */
  const direct = (curr: tf.Tensor2D, currPos: tf.Tensor2D, spatial: SpatialMemory[], pointers?: PointerTokens) =>
    tf.tidy(() => {
      const { x, keysT, values } = att.prepareBank(curr, currPos, spatial, pointers);
      return att.norm.forward(att.layers.reduce((h, l, i) => l.forward(h, keysT[i], values), x)) as tf.Tensor2D;
    });
  let inputs: { curr: tf.Tensor2D; currPos: tf.Tensor2D; spatial: SpatialMemory[]; pointers: PointerTokens };

  before(() => {
    att = new MemoryAttention(tinyConfig());
    att.loadFrom(tinyWeights());
    const spatial = [0, 1, 2].map((i) => {
      const features = tf.randomNormal([n, 64], 0, 1, 'float32', 10 + i) as tf.Tensor2D;
      const pos = tf.randomNormal([n, 64], 0, 1, 'float32', 20 + i) as tf.Tensor2D;
      const keyInput = tf.add(features, pos) as tf.Tensor2D;
      pos.dispose();
      const tpos = tf.randomNormal([1, 64], 0, 1, 'float32', 30 + i) as tf.Tensor2D;
      return { features, keyInput, keysT: att.spatialKeys(keyInput), tpos };
    });
    inputs = {
      curr: tf.randomNormal([n, 256], 0, 1, 'float32', 1) as tf.Tensor2D,
      currPos: tf.randomNormal([n, 256], 0, 1, 'float32', 2) as tf.Tensor2D,
      spatial,
      pointers: {
        tokens: tf.randomNormal([16, 64], 0, 1, 'float32', 3) as tf.Tensor2D,
        pos: tf.randomNormal([16, 64], 0, 1, 'float32', 4) as tf.Tensor2D,
      },
    };
  });

  after(() => {
    const { curr, currPos, spatial, pointers } = inputs;
    tf.dispose([
      curr,
      currPos,
      pointers.tokens,
      pointers.pos,
      ...spatial.flatMap((m) => [m.features, m.keyInput, m.tpos, ...(m.keysT ?? [])]),
    ]);
    att.disposeAll();
  });

  it('cached keys plus per-frame temporal encodings equal keys computed from memory + position', () => {
    const { curr, currPos, spatial, pointers } = inputs;
    const fresh = tf.tidy(() => {
      // the reference's layout: temporal encodings folded into the positions, pointers last
      const memPos = spatial.map((m, i) => tf.add(tf.randomNormal([n, 64], 0, 1, 'float32', 20 + i), m.tpos));
      const memory = tf.concat([...spatial.map((m) => m.features), pointers.tokens]) as tf.Tensor2D;
      const memoryPos = tf.concat([...memPos, pointers.pos]) as tf.Tensor2D;
      return att.forward(curr, currPos, memory, memoryPos, 16);
    });
    const cached = direct(curr, currPos, spatial, pointers);
    const ref = fresh.dataSync() as Float32Array;
    const std = tf.tidy(() => tf.moments(fresh).variance.sqrt().dataSync()[0]);
    expectClose('cached vs fresh keys', cached.dataSync(), ref, 1e-5, std);
    tf.dispose([fresh, cached]);
  });

  it('factored RoPE scores (wasm SIMD) give the output of the direct products, also for an odd query count, and leak nothing', async function () {
    const { curr, currPos, spatial, pointers } = inputs;
    if (!att.usesFactoredKeys(n, spatial.length)) this.skip();
    // 3 memories and pointers: factored; 2 memories: below the threshold, the direct products themselves
    for (const [bank, ptrs] of [
      [spatial, pointers],
      [spatial.slice(0, 2), undefined],
    ] as const) {
      const ref = direct(curr, currPos, bank, ptrs);
      const out = await expectNoLeak('factored forwardBank', async () => {
        const y = att.forwardBank(curr, currPos, bank, ptrs);
        const data = y.dataSync().slice();
        y.dispose();
        return data;
      });
      const factored = att.usesFactoredKeys(n, bank.length);
      expect(factored).to.equal(bank.length >= 3);
      const std = tf.tidy(() => tf.moments(ref).variance.sqrt().dataSync()[0]);
      const label = `${factored ? 'factored' : 'direct (fallback)'} vs direct, ${bank.length} memories`;
      expectClose(label, out, ref.dataSync(), factored ? 2e-5 : 0, std);
      ref.dispose();
    }
    // one layer's scores alone, 301 queries (an odd count, split between the threads)
    const layer = att.layers[1].crossAttnImage;
    const q = tf.randomNormal([301, 256], 0, 1, 'float32', 9) as tf.Tensor2D;
    const [one, two] = tf.tidy(() => {
      const values = tf.concat(spatial.map((m) => m.features)) as tf.Tensor2D;
      const keysT = tf.concat(
        spatial.map((m) => tf.add(m.keysT![1], layer.gridKeyOffsetT(m.tpos, n))),
        1,
      ) as tf.Tensor2D;
      const inputs3 = tf.stack(spatial.map((m) => tf.add(m.keyInput, m.tpos))) as tf.Tensor3D;
      const factored = { u: packFactoredKeys(inputs3, 32), count: 3, side: 32 };
      const rows = { gridSize: n, start: 500, count: 301 };
      return [layer.attend(q, keysT, values, rows), layer.attend(q, factored, values, rows)];
    });
    const std = tf.tidy(() => tf.moments(one).variance.sqrt().dataSync()[0]);
    expectClose('one layer, factored vs direct', two.dataSync(), one.dataSync(), 2e-5, std);
    tf.dispose([q, one, two]);
  });

  it('splitting the query rows with a worker thread gives the same output and leaks nothing', async () => {
    const { curr, currPos, spatial, pointers } = inputs;
    const one = direct(curr, currPos, spatial, pointers);
    const parallel = new ParallelMemoryAttention(att);
    try {
      const two = await expectNoLeak('ParallelMemoryAttention.forwardBank', async () => {
        const out = await parallel.forwardBank(curr, currPos, spatial, pointers);
        const data = out.dataSync().slice();
        out.dispose();
        return data;
      });
      const std = tf.tidy(() => tf.moments(one).variance.sqrt().dataSync()[0]);
      expectClose('two threads vs one', two, one.dataSync(), 1e-6, std);
    } finally {
      one.dispose();
      expect(await parallel.dispose()).to.equal(1); // terminated
    }
  });
});
