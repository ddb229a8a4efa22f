import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { caseMasks, fixturePath, loadCase, maskIoU } from '../helpers';
import { tinyConfig, tinyImageModel, tinyWeights } from '../models';
import { Sam2Model } from '../../src/model/sam2';
import { OrtExecutor } from '../../src/onnx/ort_executor';
import { buildOnnxGraphs } from '../../src/onnx/graphs';
import { tryLoadOnnxRuntime } from '../../src/executor';
import { AutomaticMaskGenerator, type MaskAnnotation } from '../../src/predictor/automatic_mask_generator';
import { rleToMask, cocoDecodeRle, type CocoRle } from '../../src/predictor/amg/rle';
import { Sam2Error } from '../../src/errors';

interface RefAnn {
  area: number;
  bbox: number[];
  predicted_iou: number;
  point_coords: number[][];
  stability_score: number;
  crop_box: number[];
}

const camel = (params: Record<string, number>) =>
  Object.fromEntries(Object.entries(params).map(([k, v]) => [k.replace(/_([a-z])/g, (_, c) => c.toUpperCase()), v]));

const close = (a: number[], b: number[], tol: number) =>
  a.length === b.length && a.every((v, i) => Math.abs(v - b[i]) <= tol);

const runs: { name: string; executor: 'tfjs' | 'onnxruntime' }[] = [
  { name: 'amg_truck', executor: 'tfjs' },
  { name: 'amg_truck_crops', executor: 'tfjs' },
  // the ONNX Runtime executor encodes and decodes the batches itself (executor.decode)
  { name: 'amg_truck', executor: 'onnxruntime' },
];

for (const { name, executor } of runs) {
  const onOrt = executor === 'onnxruntime';
  describe(`AutomaticMaskGenerator parity on ${name}${onOrt ? ' (ONNX Runtime executor)' : ''}`, () => {
    let model: Sam2Model;
    let decodes = 0;
    before(async function () {
      if (!onOrt) return void (model = tinyImageModel());
      if (!tryLoadOnnxRuntime().ort) return this.skip();
      // its own model: the shared one keeps the TF.js executor for the other test files
      model = new Sam2Model(tinyConfig(), tinyWeights());
      const ort = await OrtExecutor.create(model, buildOnnxGraphs(model), { threads: 2 });
      const decode = ort.decode.bind(ort);
      ort.decode = (req) => (decodes++, decode(req));
      model.executor = ort;
    });
    after(() => {
      if (onOrt) model?.dispose();
    });

    it('finds >= 98% of the reference annotations with matching masks and scores, in its order', async () => {
      const c = loadCase(name);
      const refs = c.annotations as RefAnn[];
      const { masks: refMasks, h, w } = caseMasks(name, 'masks');
      const gen = new AutomaticMaskGenerator(model, {
        ...camel(c.params as Record<string, number>),
        outputMode: 'coco_rle',
      });
      const before = tf.memory().numTensors;
      const t0 = Date.now();
      let batches = 0;
      const anns = await gen.generate(fixturePath(name, 'input.png'), { onProgress: (p) => (batches = p.done) });
      const t = gen.lastTimings;
      console.log(
        `      generate: ${((Date.now() - t0) / 1000).toFixed(1)} s (encode ${(t.encode / 1000).toFixed(1)}, decode ${(t.decode / 1000).toFixed(1)}, post ${(t.postprocess / 1000).toFixed(1)}), ${batches} batches; reference ${(c.ref_generate_seconds as number).toFixed(0)} s`,
      );
      gen.dispose();
      expect(tf.memory().numTensors, 'generate leaked tensors').to.equal(before);
      console.log(`      ${anns.length} annotations (reference ${refs.length})`);
      const used = new Set<number>();
      let found = 0;
      let flips = 0;
      const order: number[] = [];
      refs.forEach((r, i) => {
        // same prompt point and crop; among those, the closest predicted IoU (one point gives up to 3 masks)
        let best = -1;
        anns.forEach((a, j) => {
          if (used.has(j) || !close(a.pointCoords[0], r.point_coords[0], 1e-3) || !close(a.cropBox, r.crop_box, 0))
            return;
          if (
            best < 0 ||
            Math.abs(a.predictedIou - r.predicted_iou) < Math.abs(anns[best].predictedIou - r.predicted_iou)
          )
            best = j;
        });
        if (best < 0) {
          flips++;
          return;
        }
        const a = anns[best];
        const mask = rleToMask(cocoDecodeRle(a.segmentation as CocoRle));
        const iou = maskIoU(mask, refMasks[i]);
        const ok =
          iou >= 0.99 &&
          Math.abs(a.area - r.area) <= 0.01 * r.area &&
          Math.abs(a.predictedIou - r.predicted_iou) <= 1e-3 &&
          Math.abs(a.stabilityScore - r.stability_score) <= 1e-2;
        if (ok) {
          used.add(best);
          found++;
          order.push(best);
        } else {
          console.log(
            `      ref ${i}: IoU ${iou.toFixed(4)}, area ${a.area}/${r.area}, iou ${a.predictedIou}/${r.predicted_iou}, stab ${a.stabilityScore}/${r.stability_score}`,
          );
        }
      });
      const inOrder = order.every((v, k) => k === 0 || v > order[k - 1]);
      console.log(
        `      matched ${found}/${refs.length}; ${flips} without a counterpart; ${anns.length - found} extra; order kept: ${inOrder}`,
      );
      if (onOrt) expect(decodes, 'batches decoded by ONNX Runtime').to.equal(batches);
      expect(h * w).to.equal(300 * 450);
      expect(found / refs.length).to.be.at.least(0.98);
      expect(inOrder, 'annotations in the reference order').to.equal(true);
    });
  });
}

describe('AutomaticMaskGenerator options and errors', () => {
  const model = () => tinyImageModel();
  const bad: [string, object, RegExp][] = [
    [
      'both pointsPerSide and pointGrids',
      { pointsPerSide: 8, pointGrids: [[[0.5, 0.5]]] },
      /exactly one of pointsPerSide and pointGrids/,
    ],
    ['neither', { pointsPerSide: null }, /exactly one of pointsPerSide and pointGrids/],
    ['an unknown output mode', { outputMode: 'png' }, /Unknown outputMode "png"/],
    ['a threshold outside [0,1]', { predIouThresh: 1.5 }, /predIouThresh must be in \[0, 1\]/],
    [
      'grids not matching the crop layers',
      { pointsPerSide: null, pointGrids: [[[0.5, 0.5]]], cropNLayers: 1 },
      /one grid per crop layer/,
    ],
  ];
  for (const [what, opts, re] of bad) {
    it(`rejects ${what} at construction`, () => {
      expect(() => new AutomaticMaskGenerator(model(), opts)).to.throw(Sam2Error, re);
    });
  }

  it('honours pointGrids, binary_mask output and useM2m on a small image without leaking', async () => {
    const gen = new AutomaticMaskGenerator(model(), {
      pointsPerSide: null,
      pointGrids: [
        [
          [0.3, 0.4],
          [0.7, 0.6],
        ],
      ],
      predIouThresh: 0,
      stabilityScoreThresh: 0,
      boxNmsThresh: 1,
      useM2m: true,
    });
    const image = { data: new Uint8Array(40 * 30 * 3).map((_, i) => (i * 13) % 256), width: 40, height: 30 };
    const before = tf.memory().numTensors;
    const anns: MaskAnnotation[] = await gen.generate(image);
    expect(tf.memory().numTensors).to.equal(before);
    expect(anns.length).to.be.greaterThan(0);
    for (const a of anns) {
      expect(a.segmentation).to.be.instanceOf(Uint8Array);
      expect((a.segmentation as Uint8Array).length).to.equal(40 * 30);
      expect([
        [12, 12],
        [28, 18],
      ]).to.deep.include(a.pointCoords[0]);
    }
    gen.dispose();
  });
});
