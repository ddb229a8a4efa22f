import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
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
import { sam1TruckEncoding, vitBModel } from '../sam1_models';
import { SamPredictor, type PredictOptions, type PredictResult } from '../../src/predictor/sam_predictor';
import { readImage } from '../../src/predictor/image_input';
import { preprocessSam1 } from '../../src/predictor/sam1_transforms';

const CASE = 'sam1_truck_vit_b';
interface PromptCase {
  id: string;
  points?: number[][];
  labels?: number[];
  box?: number[] | number[][];
  multimask: boolean;
  mask_from?: string;
}
const truck = loadCase(CASE);
const prompts = truck.prompts as PromptCase[];
const [H, W] = truck.orig_hw as [number, number];
const TOL = 1e-3;

function toOptions(p: PromptCase, done: Map<string, PredictResult>): PredictOptions[] {
  const boxes = p.box ? (Array.isArray(p.box[0]) ? (p.box as number[][]) : [p.box as number[]]) : [undefined];
  let maskInput: Float32Array | undefined;
  if (p.mask_from) {
    const src = done.get(p.mask_from)!;
    maskInput = src.lowResLogits[Array.from(src.scores).indexOf(Math.max(...src.scores))];
  }
  return boxes.map((box) => ({
    pointCoords: p.points,
    pointLabels: p.labels,
    box,
    maskInput,
    multimaskOutput: p.multimask,
  }));
}

/** Runs every prompt case (boxes4 through predictBatch) and checks logits, IoUs and masks. */
async function checkPrompts(predictor: SamPredictor, what: string) {
  const done = new Map<string, PredictResult>();
  for (const p of prompts) {
    const opts = toOptions(p, done);
    const out =
      opts.length === 1
        ? [await predictor.predict(opts[0])]
        : await predictor.predictBatch(opts, { multimaskOutput: p.multimask });
    done.set(p.id, out[0]);
    const logits = Float32Array.from(out.flatMap((r) => r.lowResLogits.flatMap((l) => Array.from(l))));
    const ref = caseTensor(CASE, `${p.id}_low_res_logits`);
    expectClose(`${what} ${p.id} low_res_logits`, logits, ref.data, TOL, ref.stats.std);
    const ious = out.flatMap((r) => Array.from(r.scores));
    const refIous = caseTensor(CASE, `${p.id}_ious`);
    expectClose(
      `${what} ${p.id} ious`,
      Float32Array.from(ious),
      refIous.data,
      TOL,
      Math.max(refIous.stats.std ?? 0, 0.1),
    );
    const { masks } = caseMasks(CASE, `${p.id}_masks`);
    const ours = out.flatMap((r) => r.masks);
    expect(ours.length).to.equal(masks.length);
    const mious = ours.map((m, i) => maskIoU(m, masks[i]));
    console.log(`      ${what} ${p.id} mask IoUs: ${mious.map((v) => v.toFixed(5)).join(', ')}`);
    mious.forEach((v, i) => expect(v, `${p.id} mask ${i} IoU`).to.be.at.least(0.999));
  }
}

describe('SAM 1 ViT-B parity on sam1_truck_vit_b', () => {
  it('preprocesses truck.png exactly like the reference (PIL bilinear resize, normalize, pad)', async () => {
    const { input, inputHW } = preprocessSam1(await readImage(fixturePath('images/truck.png')), 1024);
    expect(inputHW).to.deep.equal(truck.input_size);
    const ref = caseTensor(CASE, 'input');
    expectClose('input', nhwcToNchw(input.dataSync(), 1, 1024, 1024, 3), ref.data, 1e-6, ref.stats.std);
    input.dispose();
  });

  it('matches blocks 0, 6, 11 and image_embed (<= 1e-3 x std) from the reference input', () => {
    const enc = sam1TruckEncoding();
    console.log(`      ViT-B encode at 1024 took ${enc.seconds.toFixed(1)} s`);
    for (const [i, t] of enc.blocks) {
      const { data, stats } = caseTensor(CASE, `block${i}`);
      // the reference's blocks are NHWC: sample in that order
      const flat = t.dataSync() as Float32Array;
      const ours = Float32Array.from({ length: data.length }, (_, j) => flat[j * (stats.sampled_every ?? 1)]);
      expectClose(`block${i}`, ours, data, TOL, stats.std);
    }
    const { data, stats } = caseTensor(CASE, 'image_embed');
    expectClose('image_embed', nhwcToNchw(enc.imageEmbed.dataSync(), 1, 64, 64, 256), data, TOL, stats.std);
  });

  it('every prompt case on the reference image_embed: logits <= 1e-3 x std, masks IoU >= 0.999', async () => {
    const predictor = new SamPredictor(vitBModel());
    const ref = caseTensor(CASE, 'image_embed').data;
    const embed = tf.tidy(() => tf.transpose(tf.tensor4d(ref, [1, 256, 64, 64]), [0, 2, 3, 1]) as tf.Tensor4D);
    predictor.setImageFeatures({ imageEmbed: embed }, [H, W]);
    embed.dispose();
    await checkPrompts(predictor, 'ref-embed');
    predictor.dispose();
  });

  it('every prompt case end to end on our own encode of the input (same tolerances), no leaks', async () => {
    const predictor = new SamPredictor(vitBModel());
    predictor.setImageFeatures({ imageEmbed: sam1TruckEncoding().imageEmbed }, [H, W]);
    await checkPrompts(predictor, 'own-embed');
    await expectNoLeak('predict + predictBatch', async () => {
      await predictor.predict({ pointCoords: [[500, 375]], pointLabels: [1], box: [425, 600, 700, 875] });
      await predictor.predictBatch([{ box: [425, 600, 700, 875] }, { box: [75, 275, 1725, 850] }]);
    });
    predictor.dispose();
  });
});
