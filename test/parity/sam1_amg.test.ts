import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { caseMasks, fixturePath, loadCase, maskIoU } from '../helpers';
import { vitBModel } from '../sam1_models';
import { AutomaticMaskGenerator } from '../../src/predictor/automatic_mask_generator';
import { removeSmallRegions, postprocessSmallRegions } from '../../src/predictor/amg/small_regions';
import { rleToMask, cocoDecodeRle, type CocoRle } from '../../src/predictor/amg/rle';
import { VideoPredictor } from '../../src/predictor/video_predictor';
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

describe('SAM 1 AutomaticMaskGenerator parity on amg_sam1_truck', () => {
  it('finds >= 98% of the reference annotations with matching masks and scores, in its order', async () => {
    const name = 'amg_sam1_truck';
    const c = loadCase(name);
    const refs = c.annotations as RefAnn[];
    const { masks: refMasks } = caseMasks(name, 'masks');
    const gen = new AutomaticMaskGenerator(vitBModel(), {
      ...camel(c.params as Record<string, number>),
      outputMode: 'coco_rle',
    });
    const before = tf.memory().numTensors;
    const t0 = Date.now();
    const anns = await gen.generate(fixturePath(name, 'input.png'));
    const t = gen.lastTimings;
    console.log(
      `      generate: ${((Date.now() - t0) / 1000).toFixed(1)} s (encode ${(t.encode / 1000).toFixed(1)}, decode ${(t.decode / 1000).toFixed(1)}); reference ${(c.ref_generate_seconds as number).toFixed(0)} s`,
    );
    gen.dispose();
    expect(tf.memory().numTensors, 'generate leaked tensors').to.equal(before);
    const used = new Set<number>();
    const order: number[] = [];
    let found = 0;
    refs.forEach((r, i) => {
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
      if (best < 0) return;
      const a = anns[best];
      const iou = maskIoU(rleToMask(cocoDecodeRle(a.segmentation as CocoRle)), refMasks[i]);
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
    console.log(`      matched ${found}/${refs.length}; ${anns.length} annotations (reference ${refs.length})`);
    expect(found / refs.length).to.be.at.least(0.98);
    expect(
      order.every((v, k) => k === 0 || v > order[k - 1]),
      'annotations in the reference order',
    ).to.equal(true);
  });
});

describe('SAM 1: options that only SAM 2 has, and small-region removal', () => {
  it('useM2m and VideoPredictor are CONFIG errors with a SAM 1 model', () => {
    expect(() => new AutomaticMaskGenerator(vitBModel(), { useM2m: true })).to.throw(
      Sam2Error,
      /useM2m is a SAM 2 option/,
    );
    try {
      new VideoPredictor(vitBModel());
      expect.fail('should throw');
    } catch (e) {
      expect((e as Sam2Error).code).to.equal('CONFIG');
      expect((e as Error).message).to.match(/SAM 1, which cannot track videos/);
    }
  });

  it('removeSmallRegions fills holes and drops islands below the area (strictly), keeping the largest island', () => {
    // 8x8: a 4x4 square with a 1-pixel hole and a diagonal tail, plus a lone pixel far away
    const n = 8;
    const m = new Uint8Array(n * n);
    for (let y = 1; y < 5; y++) for (let x = 1; x < 5; x++) m[y * n + x] = 1;
    m[2 * n + 2] = 0;
    m[5 * n + 5] = 1; // touches the square diagonally: 8-connected, so part of it
    m[7 * n + 7] = 1; // separate island of area 1
    const holes = removeSmallRegions(m, n, n, 2, 'holes');
    expect(holes.changed).to.equal(true);
    expect(holes.mask[2 * n + 2]).to.equal(1);
    const islands = removeSmallRegions(holes.mask, n, n, 2, 'islands');
    expect(islands.mask[7 * n + 7]).to.equal(0);
    expect(islands.mask[5 * n + 5]).to.equal(1);
    expect(removeSmallRegions(m, n, n, 1, 'islands').changed).to.equal(false); // area 1 is not < 1
    const only = new Uint8Array(36);
    only[0] = 1;
    only[3] = only[4] = 1;
    expect(Array.from(removeSmallRegions(only, 6, 6, 10, 'islands').mask.slice(0, 6))).to.deep.equal([
      0, 0, 0, 1, 1, 0,
    ]);
    // the NMS prefers the unchanged one of two duplicates
    const clean = Uint8Array.from(islands.mask);
    const kept = postprocessSmallRegions(
      [
        { mask: m, box: [1, 1, 7, 7] },
        { mask: clean, box: [1, 1, 5, 5] },
      ],
      n,
      n,
      2,
      0.7,
    );
    expect(kept.map((k) => k.index)).to.deep.equal([1]);
  });
});
