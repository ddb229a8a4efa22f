/**
 * The ONNX Runtime executor: per-layer graph emission vs the TF.js layers on random inputs, the
 * prompt decoder on every image_truck prompt case, and port -> loadSam2({ executor }) ->
 * SamPredictor end to end on truck.png at the parity tolerances. Needs onnxruntime-node (a
 * devDependency); the executor choice is also checked with the peer hidden.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import type * as Ort from 'onnxruntime-node';
import {
  caseMasks,
  caseTensor,
  expectClose,
  expectNoLeak,
  fixturePath,
  loadCase,
  maskIoU,
  nhwcToNchw,
} from '../helpers';
import { tinyImageModel, tinyWeights, truckFixtureFeatures } from '../models';
import { writeFormulaCheckpoint } from '../helpers/torch_writer';
import { OnnxBuilder, type Dim } from '../../src/onnx/builder';
import {
  emitAttention,
  emitImageToToken,
  emitTokenToImage,
  emitConv2d,
  emitLayerNorm,
  emitLinear,
  emitMlp,
  emitMultiScaleBlock,
} from '../../src/onnx/layers';
import { OrtExecutor } from '../../src/onnx/ort_executor';
import { buildOnnxGraphs, MANIFEST_FILE } from '../../src/onnx/graphs';
import { IMAGE_SIDE_NAMES, buildMemoryAttention, buildMemoryEncoder } from '../../src/onnx/models';
import { makeConfig } from '../../src/config';
import { exportOnnx } from '../../src/export_onnx';
import { EXECUTOR_ENV, parseExecutorChoice, resolveExecutorChoice } from '../../src/executor';
import { SamPredictor, type PredictOptions, type PredictResult } from '../../src/predictor/sam_predictor';
import { AutomaticMaskGenerator } from '../../src/predictor/automatic_mask_generator';
import { VideoPredictor } from '../../src/predictor/video_predictor';
import { runVideoScript } from '../helpers/video_script';
import { portCheckpoint } from '../../src/io/port';
import { createExecutor, loadSam2 } from '../../src/load';
import { Sam2Error } from '../../src/errors';
import { Sam2Model } from '../../src/model/sam2';

const ort = require('onnxruntime-node') as typeof Ort;

/** Runs a one-output graph built by `emit` on `inputs` and returns the output data. */
async function runGraph(
  inputs: { name: string; t: tf.Tensor; shape?: Dim[] }[],
  emit: (b: OnnxBuilder, names: string[]) => string,
): Promise<Float32Array> {
  const b = new OnnxBuilder('layer_test');
  const names = inputs.map((i) => b.input(i.name, 'float32', i.shape ?? i.t.shape));
  b.output('y', emit(b, names), 'float32', []);
  const session = await ort.InferenceSession.create(b.toBytes(), { intraOpNumThreads: 1 });
  const feeds: Record<string, Ort.Tensor> = {};
  for (const i of inputs) feeds[i.name] = new ort.Tensor('float32', Float32Array.from(i.t.dataSync()), i.t.shape);
  const out = await session.run(feeds);
  await session.release();
  return out.y.data as Float32Array;
}

function expectSame(name: string, ours: Float32Array, ref: tf.Tensor, tol = 1e-4) {
  const r = ref.dataSync();
  expect(ours.length, `${name} size`).to.equal(r.length);
  const std = tf.tidy(() => tf.sqrt(tf.moments(ref).variance).dataSync()[0]);
  expectClose(name, ours, r, tol, std);
}

const rand = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

describe('ONNX graphs: each layer matches its TF.js forward (random inputs)', () => {
  const model = () => tinyImageModel();
  const trunk = () => model().imageEncoder.trunk;

  it('Linear, LayerNorm, Mlp (GELU), Conv2d 7x7/4 and 1x1', async () => {
    const blk = trunk().blocks[0];
    const x = rand([1, 12, 12, 96], 1);
    expectSame(
      'Linear',
      await runGraph([{ name: 'x', t: x }], (b, [v]) => emitLinear(b, blk.mlp.layers[0], v)),
      blk.mlp.layers[0].forward(x),
    );
    expectSame(
      'LayerNorm',
      await runGraph([{ name: 'x', t: x }], (b, [v]) => emitLayerNorm(b, blk.norm1, v)),
      blk.norm1.forward(x),
    );
    expectSame('Mlp', await runGraph([{ name: 'x', t: x }], (b, [v]) => emitMlp(b, blk.mlp, v)), blk.mlp.forward(x));
    const img = rand([1, 32, 32, 3], 2) as tf.Tensor4D;
    const pe = trunk().patchEmbed;
    expectSame(
      'Conv2d 7x7/4',
      await runGraph([{ name: 'x', t: img }], (b, [v]) => emitConv2d(b, pe, v)),
      pe.forward(img),
    );
    const lat = model().imageEncoder.neck.convs[3];
    const f = rand([1, 8, 8, 96], 3) as tf.Tensor4D;
    expectSame('Conv2d 1x1', await runGraph([{ name: 'x', t: f }], (b, [v]) => emitConv2d(b, lat, v)), lat.forward(f));
    tf.dispose([x, img, f]);
  });

  // block 1: windows of 8 + query pooling + channel projection; 3: windows of 4 padded (14 -> 16);
  // 5: global attention; 10: windows of 14 padded, pooled to 7, output cropped
  const cases: [number, number[]][] = [
    [1, [1, 16, 16, 96]],
    [3, [1, 14, 14, 192]],
    [5, [1, 6, 6, 384]],
    [6, [1, 20, 20, 384]],
    [10, [1, 20, 20, 384]],
  ];
  for (const [i, shape] of cases) {
    it(`MultiScaleBlock ${i} on [${shape}]`, async () => {
      const blk = trunk().blocks[i];
      const x = rand(shape, 10 + i) as tf.Tensor4D;
      let outShape: number[] = [];
      const y = await runGraph([{ name: 'x', t: x }], (b, [v]) => {
        const r = emitMultiScaleBlock(b, blk, v, shape);
        outShape = r.shape;
        return r.y;
      });
      const ref = blk.forward(x);
      expect(outShape).to.deep.equal(ref.shape);
      expectSame(`block ${i}`, y, ref);
      tf.dispose([x, ref]);
    });
  }

  it('Attention with 8 heads and 2x downsampling, dynamic batch and length', async () => {
    const a = model().maskDecoder.transformer.finalAttnTokenToImage;
    const q = rand([2, 7, 256], 20) as tf.Tensor3D;
    const k = rand([2, 50, 256], 21) as tf.Tensor3D;
    const y = await runGraph(
      [
        { name: 'q', t: q, shape: ['B', 'N', 256] },
        { name: 'k', t: k, shape: ['B', 'M', 256] },
      ],
      (b, [vq, vk]) => emitAttention(b, a, vq, vk, vk),
    );
    expectSame('Attention', y, a.forward(q, k, k));
    tf.dispose([q, k]);
  });

  it('reassociated token-to-image and image-to-token attention (image tokens shared or per prompt set)', async () => {
    const [block] = model().maskDecoder.transformer.layers;
    const t2i = block.crossAttnTokenToImage;
    const i2t = block.crossAttnImageToToken;
    for (const kb of [1, 2]) {
      const tk = rand([2, 7, 256], 30) as tf.Tensor3D; // prompt tokens (+ encoding)
      const tv = rand([2, 7, 256], 31) as tf.Tensor3D;
      const keys = rand([kb, 50, 256], 32) as tf.Tensor3D; // image tokens (+ encoding)
      const values = rand([kb, 50, 256], 33) as tf.Tensor3D;
      const tokens = [
        { name: 'tk', t: tk, shape: ['B', 'N', 256] as Dim[] },
        { name: 'tv', t: tv, shape: ['B', 'N', 256] as Dim[] },
      ];
      const image = [
        { name: 'keys', t: keys, shape: [kb, 'M', 256] as Dim[] },
        { name: 'values', t: values, shape: [kb, 'M', 256] as Dim[] },
      ];
      const y = await runGraph([tokens[0], ...image], (b, [q, k, v]) => emitTokenToImage(b, t2i, q, k, v));
      expectSame(`tokenToImage (image batch ${kb})`, y, t2i.forward(tk, keys, values));
      const ref = i2t.forward(keys, tk, tv);
      const z = await runGraph([image[0], ...tokens], (b, [k, q, v]) => emitImageToToken(b, i2t, { keys: k }, q, v));
      expectSame(`imageToToken from keys (image batch ${kb})`, z, ref);
      const qp = i2t.qProj.forward(keys) as tf.Tensor3D;
      const w = await runGraph([{ name: 'qp', t: qp, shape: [kb, 'M', 128] }, ...tokens], (b, [q, k, v]) =>
        emitImageToToken(b, i2t, { q }, k, v),
      );
      expectSame(`imageToToken from q_proj (image batch ${kb})`, w, ref);
      tf.dispose([tk, tv, keys, values, ref, qp]);
    }
  });

  it('memory attention (RoPE, 4 layers) over 2 memories and 4 pointers, dynamic bank size, at 256 px', async () => {
    const m = new Sam2Model(makeConfig('sam2.1', 'tiny', 256), tinyWeights());
    const att = m.video!.memoryAttention;
    const n = 16 * 16;
    const curr = rand([n, 256], 30) as tf.Tensor2D;
    const currPos = rand([n, 256], 31) as tf.Tensor2D;
    const spatial = [0, 1].map((i) => {
      const features = rand([n, 64], 32 + i) as tf.Tensor2D;
      const pos = rand([n, 64], 34 + i) as tf.Tensor2D;
      const keyInput = tf.add(features, pos) as tf.Tensor2D;
      pos.dispose();
      return { features, keyInput, keysT: att.spatialKeys(keyInput), tpos: rand([1, 64], 36 + i) as tf.Tensor2D };
    });
    const pointers = { tokens: rand([4, 64], 38) as tf.Tensor2D, pos: rand([4, 64], 39) as tf.Tensor2D };
    const session = await ort.InferenceSession.create(buildMemoryAttention(m).bytes, { intraOpNumThreads: 2 });
    for (const bank of [spatial, spatial.slice(0, 1)]) {
      const ref = att.forwardBank(curr, currPos, bank, pointers);
      const { x, keysT, values } = att.prepareBank(curr, currPos, bank, pointers);
      const feeds: Record<string, Ort.Tensor> = {
        x: new ort.Tensor('float32', Float32Array.from(x.dataSync()), x.shape),
        values: new ort.Tensor('float32', Float32Array.from(values.dataSync()), values.shape),
      };
      keysT.forEach(
        (k, l) => (feeds[`keys_t_${l}`] = new ort.Tensor('float32', Float32Array.from(k.dataSync()), k.shape)),
      );
      const y = (await session.run(feeds)).y.data as Float32Array;
      expectSame(`memory attention, ${bank.length} memories`, y, ref, 1e-5);
      tf.dispose([ref, x, ...keysT, values]);
    }
    await session.release();
    tf.dispose([
      curr,
      currPos,
      pointers.tokens,
      pointers.pos,
      ...spatial.flatMap((s) => [s.features, s.keyInput, s.tpos, ...s.keysT]),
    ]);
    m.dispose();
  });

  it('memory encoder (mask downsampler, CXBlock fuser with a depthwise 7x7 conv) at 256 px', async () => {
    const m = new Sam2Model(makeConfig('sam2.1', 'tiny', 256), tinyWeights());
    const pix = rand([1, 16, 16, 256], 40) as tf.Tensor4D;
    const mask = tf.tidy(() => tf.sub(tf.mul(tf.sigmoid(rand([1, 256, 256, 1], 41)), 20), 10)) as tf.Tensor4D;
    const session = await ort.InferenceSession.create(buildMemoryEncoder(m).bytes, { intraOpNumThreads: 2 });
    const feeds = {
      pix_feat: new ort.Tensor('float32', Float32Array.from(pix.dataSync()), pix.shape),
      mask: new ort.Tensor('float32', Float32Array.from(mask.dataSync()), mask.shape),
    };
    const y = (await session.run(feeds)).vision_features.data as Float32Array;
    const ref = m.video!.memoryEncoder.forward(pix, mask).visionFeatures;
    expectSame('memory encoder', y, ref, 1e-5);
    await session.release();
    tf.dispose([pix, mask, ref]);
    m.dispose();
  });
});

interface PromptCase {
  id: string;
  points?: number[][];
  labels?: number[];
  box?: number[] | number[][];
  multimask: boolean;
  mask_from?: string;
}

const truck = loadCase('image_truck');
const prompts = truck.prompts as PromptCase[];
const [H, W] = truck.orig_hw as [number, number];

async function runCase(
  predictor: SamPredictor,
  p: PromptCase,
  done: Map<string, PredictResult>,
): Promise<PredictResult[]> {
  const boxes = p.box ? (Array.isArray(p.box[0]) ? (p.box as number[][]) : [p.box as number[]]) : [undefined];
  let maskInput: Float32Array | undefined;
  if (p.mask_from) {
    const src = done.get(p.mask_from)!;
    maskInput = src.lowResLogits[Array.from(src.scores).indexOf(Math.max(...src.scores))];
  }
  const opts: PredictOptions[] = boxes.map((box) => ({
    pointCoords: p.points,
    pointLabels: p.labels,
    box,
    maskInput,
    multimaskOutput: p.multimask,
  }));
  const out =
    opts.length === 1
      ? [await predictor.predict(opts[0])]
      : await predictor.predictBatch(opts, { multimaskOutput: p.multimask });
  done.set(p.id, out[0]);
  return out;
}

/** The tolerances of test/sam_predictor.test.ts; returns the worst mask IoU. */
function compareCase(p: PromptCase, out: PredictResult[]): number {
  const logits = Float32Array.from(out.flatMap((r) => r.lowResLogits.flatMap((l) => Array.from(l))));
  const ref = caseTensor('image_truck', `${p.id}_low_res_logits`);
  expectClose(`${p.id} low_res_logits`, logits, ref.data, 1e-3, ref.stats.std);
  const refIous = Array.from(caseTensor('image_truck', `${p.id}_ious`).data);
  out
    .flatMap((r) => Array.from(r.scores))
    .forEach((v, i) => expect(Math.abs(v - refIous[i]), `${p.id} iou ${i}`).to.be.at.most(1e-4));
  const { masks } = caseMasks('image_truck', `${p.id}_masks`);
  const ious = out.flatMap((r) => r.masks).map((m, i) => maskIoU(m, masks[i]));
  expect(ious.length).to.equal(masks.length);
  console.log(`      ${p.id} mask IoUs: ${ious.map((v) => v.toFixed(5)).join(', ')}`);
  ious.forEach((v) => expect(v).to.be.at.least(0.999));
  return Math.min(...ious);
}

describe('ONNX Runtime executor: prompt decoder on the fixture features (image_truck)', () => {
  let model: Sam2Model;
  let predictor: SamPredictor;
  let graphs: ReturnType<typeof buildOnnxGraphs>;
  const done = new Map<string, PredictResult>();
  before(async () => {
    // its own model: the shared one keeps the TF.js executor for the other test files
    model = new Sam2Model(tinyImageModel().config, tinyWeights());
    const t0 = Date.now();
    graphs = buildOnnxGraphs(model);
    model.executor = await OrtExecutor.create(model, graphs, { threads: 2 });
    console.log(`      graphs built and loaded in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    predictor = new SamPredictor(model);
    predictor.setImageFeatures(truckFixtureFeatures(), [H, W]);
  });
  after(() => {
    predictor?.dispose();
    model?.dispose();
  });

  for (const p of prompts) {
    it(`${p.id}: logits <= 1e-3 x std, ious within 1e-4, masks IoU >= 0.999`, async () => {
      compareCase(p, await runCase(predictor, p, done));
    });
  }

  it('leaks no tensors in predict/predictBatch; mask-only prompts fall back to the TF.js decoder', async () => {
    await predictor.predict({ pointCoords: [[500, 375]], pointLabels: [1] });
    await expectNoLeak('predict', () => predictor.predict({ pointCoords: [[500, 375]], pointLabels: [1] }));
    await expectNoLeak('predictBatch', () =>
      predictor.predictBatch([{ box: [425, 600, 700, 875] }, { box: [75, 275, 1725, 850] }]),
    );
    const r = await predictor.predict({ maskInput: done.get(prompts[0].id)!.lowResLogits[0], multimaskOutput: false });
    expect(r.masks).to.have.length(1);
  });

  it("prompt_decoder_no_mask, fed the image encoder's image-side outputs, matches prompt_mask_decoder without a mask", async () => {
    const S = model.config.imageSize;
    const [enc, general, noMask] = await Promise.all(
      [graphs.imageEncoder, graphs.promptMaskDecoder, graphs.promptDecoderNoMask!].map((g) =>
        ort.InferenceSession.create(g, { intraOpNumThreads: 2 }),
      ),
    );
    try {
      const image = Float32Array.from({ length: S * S * 3 }, (_, i) => Math.sin(i * 0.001));
      const e = await enc.run({ image: new ort.Tensor('float32', image, [1, S, S, 3]) });
      const features = {
        image_embed: e.image_embed,
        high_res_feats_0: e.high_res_feats_0,
        high_res_feats_1: e.high_res_feats_1,
      };
      // two prompt sets: a click and a background click; a box
      const prompts = {
        point_coords: new ort.Tensor('float32', Float32Array.of(300, 400, 700, 200, 100, 150, 800, 900), [2, 2, 2]),
        point_labels: new ort.Tensor('float32', Float32Array.of(1, 0, 2, 3), [2, 2]),
      };
      const m = model.promptEncoder.maskInputSize;
      const a = await general.run({
        ...features,
        ...prompts,
        mask_input: new ort.Tensor('float32', new Float32Array(m * m), [1, m, m, 1]),
        has_mask_input: new ort.Tensor('float32', Float32Array.of(0), [1]),
      });
      const side = Object.fromEntries(IMAGE_SIDE_NAMES.map((n) => [n, e[n]]));
      const b = await noMask.run({ ...features, ...prompts, ...side });
      // the same sums in another order: within 1e-5 x the logits' std (scores: absolute 1e-5)
      for (const name of ['low_res_masks', 'iou_predictions', 'object_score_logits']) {
        const ref = a[name].data as Float32Array;
        let std = 1;
        if (name === 'low_res_masks') std = Math.sqrt(ref.reduce((acc, v) => acc + v * v, 0) / ref.length);
        expectClose(name, b[name].data as Float32Array, ref, 1e-5, std);
      }
    } finally {
      await Promise.all([enc, general, noMask].map((x) => x.release()));
    }
  });

  it('decodes more than 16 prompt sets in chunks, like the TF.js decoder', async () => {
    const k = 17;
    const coords = tf.tensor3d(
      Array.from({ length: k }, (_, i) => [
        [100 + 20 * i, 300],
        [700 + 20 * i, 875],
      ]).flat(2),
      [k, 2, 2],
    );
    const labels = tf.tensor2d(Array.from({ length: k }, () => [2, 3]).flat(), [k, 2]);
    const features = truckFixtureFeatures();
    const ours = await expectNoLeak('chunked decode', async () => {
      const r = (await model.executor.decode!({ features, imageIndex: 0, coords, labels, multimaskOutput: false }))!;
      const data = r.lowResMasks.dataSync();
      tf.dispose([r.lowResMasks, r.ious, r.objectScoreLogits]);
      return data;
    });
    // the TF.js decoder on the first and last prompt sets only (17 on wasm take half a minute)
    const tfjs = new SamPredictor(tinyImageModel());
    tfjs.setImageFeatures(features, [H, W]);
    const pick = tf.tensor1d([0, k - 1], 'int32');
    const ref = tf.tidy(() =>
      tfjs.predictTensors(tf.gather(coords, pick), tf.gather(labels, pick), { multimaskOutput: false }),
    );
    const oursPicked = tf.tidy(() => tf.gather(tf.tensor4d(ours, [k, 256, 256, 1]), pick));
    expectSame(
      '17 boxes (first and last), low-res logits',
      oursPicked.dataSync() as Float32Array,
      ref.lowResMasks,
      1e-4,
    );
    tf.dispose([ref.lowResMasks, ref.ious, ref.objectScoreLogits, coords, labels, pick, oursPicked]);
    tfjs.dispose();
  });

  it('asks for CUDA and falls back to the CPU provider with a reason when it does not load', async () => {
    const ex = await OrtExecutor.create(model, graphs, { executionProvider: 'cuda', threads: 1 });
    try {
      if (ex.info.provider === 'cuda') return; // a machine with CUDA 12: nothing to fall back from
      expect(ex.info.provider).to.equal('cpu');
      expect(ex.info.fallback?.[0]).to.match(/^cuda: /);
    } finally {
      ex.dispose();
    }
  });
});

/** One ported formula checkpoint shared by the suites below (porting takes seconds). */
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sam2-onnx-'));
const dir = path.join(tmp, 'weights');
function ported(): string {
  if (!fs.existsSync(path.join(dir, 'model.json'))) {
    const ckpt = path.join(tmp, 'sam2.1_hiera_tiny.pt');
    writeFormulaCheckpoint(ckpt);
    portCheckpoint(ckpt, dir);
    fs.rmSync(ckpt);
  }
  return dir;
}
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('ONNX Runtime executor: port -> loadSam2 -> SamPredictor on truck.png', () => {
  before(() => ported());

  it('executor "onnxruntime": features and every prompt case at the parity tolerances; times setImage and predict', async () => {
    let t0 = Date.now();
    const model = await loadSam2(dir, { executor: 'onnxruntime', threads: 2 });
    console.log(`      loadSam2 (port read + graphs built and cached) ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect((model as Sam2Model).executor.info).to.include({ executor: 'onnxruntime', provider: 'cpu', threads: 2 });
    expect(fs.existsSync(path.join(dir, 'onnx', '1024', MANIFEST_FILE))).to.equal(true);
    const predictor = new SamPredictor(model);
    // clicks and boxes after setImage go through prompt_decoder_no_mask
    const ex = (model as Sam2Model).executor as unknown as { decoderNoMask: Ort.InferenceSession };
    let noMaskRuns = 0;
    const run = ex.decoderNoMask.run.bind(ex.decoderNoMask);
    ex.decoderNoMask.run = ((...args: Parameters<typeof run>) => (noMaskRuns++, run(...args))) as typeof run;
    const before = tf.memory().numTensors;
    const times: number[] = [];
    for (let i = 0; i < 2; i++) {
      t0 = Date.now();
      await predictor.setImage(fixturePath('images/truck.png'));
      times.push(Date.now() - t0);
    }
    console.log(`      setImage (ONNX Runtime): ${times.map((t) => (t / 1000).toFixed(2)).join(', ')} s`);
    const emb = predictor.getImageEmbedding();
    for (const [name, t] of [['image_embed', emb]] as const) {
      const ref = caseTensor('image_truck', name);
      const [n, h, w, c] = t.shape;
      expectClose(name, nhwcToNchw(t.dataSync(), n, h, w, c), ref.data, 1e-3, ref.stats.std);
    }
    emb.dispose();
    const done = new Map<string, PredictResult>();
    let worst = 1;
    for (const p of prompts) worst = Math.min(worst, compareCase(p, await runCase(predictor, p, done)));
    console.log(`      worst mask IoU ${worst.toFixed(5)}`);
    const clicks: number[] = [];
    for (let i = 0; i < 5; i++) {
      t0 = performance.now();
      await predictor.predict({ pointCoords: [[500 + i, 375]], pointLabels: [1] });
      clicks.push(performance.now() - t0);
    }
    console.log(`      one-click predict (ONNX Runtime): ${clicks.map((t) => t.toFixed(0)).join(', ')} ms`);
    expect(noMaskRuns, 'runs of prompt_decoder_no_mask').to.be.greaterThan(5);
    predictor.dispose();
    expect(tf.memory().numTensors, 'setImage/predict/dispose leaked').to.equal(before);
    model.dispose();
    // a second load reads the cached graphs
    t0 = Date.now();
    const again = await loadSam2(dir, { executor: 'onnxruntime' });
    console.log(`      loadSam2 with cached graphs ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect(((again as Sam2Model).executor as OrtExecutor).graphs.cached).to.equal(true);
    again.dispose();
  });
});

describe('ONNX Runtime executor: VideoPredictor (frame encodes, memory encoder and memory attention on ONNX Runtime)', () => {
  it('video_bedroom: both prompts on frame 0 and the first 2 propagated frames match the reference; no leaks', async () => {
    const before = tf.memory().numTensors;
    const model = (await loadSam2(ported(), { executor: 'onnxruntime' })) as Sam2Model;
    const exec = model.executor as OrtExecutor;
    // count what ran on ONNX Runtime: frame encodes, memory encoder, memory attention
    const calls = { frameFeatures: 0, encodeMemory: 0, attendMemory: 0 };
    for (const name of Object.keys(calls) as (keyof typeof calls)[]) {
      const f = (exec[name] as (...a: unknown[]) => unknown).bind(exec);
      (exec as unknown as Record<string, unknown>)[name] = (...a: unknown[]) => (calls[name]++, f(...a));
    }
    const video = new VideoPredictor(model);
    const t0 = Date.now();
    await runVideoScript(video, { steps: 3, maxFrames: 2 });
    console.log(`      ${((Date.now() - t0) / 1000).toFixed(1)} s (frame encodes: ${video.timings.encoder} ms)`);
    expect(calls.frameFeatures).to.equal(3);
    expect(calls.encodeMemory).to.be.at.least(4); // 2 objects x (frame 0, then each tracked frame)
    expect(calls.attendMemory).to.equal(4); // 2 objects x frames 1 and 2
    video.dispose();
    model.dispose();
    expect(tf.memory().numTensors, 'tensors left after the video and the model are disposed').to.equal(before);
  });
});

describe('ONNX Runtime executor: AutomaticMaskGenerator unchanged (256 px, 4x4 points)', () => {
  it('gives the same annotations as the TF.js executor', async () => {
    const image = {
      data: new Uint8Array(160 * 120 * 3).map((_, i) => (i * 7 + (i >> 9)) % 256),
      width: 160,
      height: 120,
    };
    const run = async (executor: 'tfjs' | 'onnxruntime') => {
      const model = await loadSam2(ported(), { executor, imageSize: 256, onnxCacheDir: false });
      try {
        const amg = new AutomaticMaskGenerator(model, { pointsPerSide: 4, predIouThresh: 0, stabilityScoreThresh: 0 });
        return await amg.generate(image);
      } finally {
        model.dispose();
      }
    };
    const ours = await run('onnxruntime');
    const ref = await run('tfjs');
    expect(ours.length).to.equal(ref.length).and.to.be.above(0);
    ours.forEach((a, i) => {
      expect(Math.abs(a.predictedIou - ref[i].predictedIou), `annotation ${i} iou`).to.be.below(1e-3);
      expect(a.area, `annotation ${i} area`).to.be.closeTo(ref[i].area, Math.max(2, ref[i].area * 1e-3));
    });
  });
});

describe('executor choice', () => {
  const saved = process.env[EXECUTOR_ENV];
  afterEach(() => (saved === undefined ? delete process.env[EXECUTOR_ENV] : (process.env[EXECUTOR_ENV] = saved)));

  it('auto takes onnxruntime-node when installed, TF.js (with the reason) when not', () => {
    expect(resolveExecutorChoice('auto')).to.deep.equal({ executor: 'onnxruntime' });
    const missing = () => ({ reason: 'onnxruntime-node is not installed' });
    expect(resolveExecutorChoice('auto', missing)).to.deep.equal({
      executor: 'tfjs',
      reason: 'onnxruntime: onnxruntime-node is not installed',
    });
    expect(resolveExecutorChoice('tfjs', () => expect.fail('not looked up'))).to.deep.equal({ executor: 'tfjs' });
    expect(() => resolveExecutorChoice('onnxruntime', missing)).to.throw(Sam2Error, /npm install onnxruntime-node/);
  });

  it('parses the option and SAM2_TFJS_EXECUTOR; TF.js stays the default', async () => {
    expect(parseExecutorChoice('ONNXRuntime')).to.equal('onnxruntime');
    expect(() => parseExecutorChoice('torch')).to.throw(Sam2Error, /Unknown executor "torch"/);
    const model = tinyImageModel();
    delete process.env[EXECUTOR_ENV];
    expect((await createExecutor(model, undefined)).info.executor).to.equal('tfjs');
    process.env[EXECUTOR_ENV] = 'bogus';
    try {
      await createExecutor(model, undefined);
      expect.fail('should throw');
    } catch (e) {
      expect((e as Sam2Error).code).to.equal('BACKEND');
    }
  });

  it('without the peer, loading the package does not load onnxruntime-node or the graph builder', () => {
    const { execFileSync } = require('child_process') as typeof import('child_process');
    const out = execFileSync(
      process.execPath,
      [
        '-r',
        'tsx/cjs',
        '-e',
        "require('./src/index'); console.log(Object.keys(require.cache).filter((k) => /node_modules[\\\\/]onnx|[\\\\/]src[\\\\/]onnx[\\\\/]/.test(k)).length)",
      ],
      { cwd: path.join(__dirname, '..', '..'), encoding: 'utf8', env: { ...process.env, SAM2_TFJS_QUIET: '1' } },
    );
    expect(out.trim()).to.equal('0');
  });
});

describe('sam2-tfjs export-onnx and info', () => {
  it('exports the image, prompt and video models and their JSON from a ported folder; info reports the executor', async () => {
    const out0 = path.join(tmp, 'out');
    try {
      const r = await exportOnnx(ported(), out0, { imageSize: 256 });
      expect(r.files.map((f) => path.basename(f))).to.deep.equal([
        'image_encoder.onnx',
        'prompt_mask_decoder.onnx',
        'prompt_decoder_no_mask.onnx',
        'memory_encoder.onnx',
        'memory_attention.onnx',
        'sam2_onnx.json',
      ]);
      const manifest = JSON.parse(fs.readFileSync(path.join(out0, 'sam2_onnx.json'), 'utf8'));
      expect(manifest).to.include({ format: 'sam2-tfjs-onnx', imageSize: 256, opset: 17 });
      expect(manifest.models.prompt_mask_decoder.inputs.map((i: { name: string }) => i.name)).to.deep.equal([
        'image_embed',
        'high_res_feats_0',
        'high_res_feats_1',
        'point_coords',
        'point_labels',
        'mask_input',
        'has_mask_input',
      ]);
      expect(manifest.models.prompt_decoder_no_mask.inputs.map((i: { name: string }) => i.name)).to.deep.equal([
        'image_embed',
        'high_res_feats_0',
        'high_res_feats_1',
        'point_coords',
        'point_labels',
        ...IMAGE_SIDE_NAMES,
      ]);
      // the exported files load in ONNX Runtime and run at 256 px, the no-mask decoder on the encoder's outputs
      const enc = await ort.InferenceSession.create(path.join(out0, 'image_encoder.onnx'));
      const out = await enc.run({
        image: new ort.Tensor('float32', new Float32Array(256 * 256 * 3), [1, 256, 256, 3]),
      });
      expect(out.image_embed.dims).to.deep.equal([1, 16, 16, 256]);
      await enc.release();
      const dec = await ort.InferenceSession.create(path.join(out0, 'prompt_decoder_no_mask.onnx'));
      const feeds: Record<string, Ort.Tensor> = {
        point_coords: new ort.Tensor('float32', Float32Array.of(100, 120), [1, 1, 2]),
        point_labels: new ort.Tensor('float32', Float32Array.of(1), [1, 1]),
      };
      for (const n of ['image_embed', 'high_res_feats_0', 'high_res_feats_1', ...IMAGE_SIDE_NAMES]) feeds[n] = out[n];
      expect((await dec.run(feeds)).low_res_masks.dims).to.deep.equal([1, 64, 64, 4]);
      await dec.release();
      const { execFileSync } = require('child_process') as typeof import('child_process');
      const info = execFileSync(
        process.execPath,
        ['-r', 'tsx/cjs', path.join(__dirname, '..', '..', 'src', 'cli', 'main.ts'), 'info', '--executor', 'auto'],
        {
          encoding: 'utf8',
          env: { ...process.env, SAM2_TFJS_QUIET: '1', SAM2_TFJS_BACKEND: 'wasm' },
        },
      );
      expect(info).to.match(/onnxruntime-node: installed/);
      expect(info).to.match(/executor: onnxruntime \(auto\)/);
    } finally {
      fs.rmSync(out0, { recursive: true, force: true });
    }
  });
});
