import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { caseMasks, expectNoLeak, loadCase } from './helpers';
import { batchedNms } from '../src/predictor/amg/nms';
import { areaFromRle, cocoDecodeRle, cocoEncodeRle, maskToRle, rleToMask, type UncompressedRle } from '../src/predictor/amg/rle';
import { buildAllLayerPointGrids, buildPointGrid } from '../src/predictor/amg/grids';
import { boxXyxyToXywh, cropImage, generateCropBoxes, uncropBox, uncropMask, uncropPoint, type Box } from '../src/predictor/amg/crops';
import { batchedMaskToBox, isBoxNearCropEdge, maskToBox, removeSmallRegions, stabilityScore } from '../src/predictor/amg/masks';

/** Row-major 0/1 mask from strings like '.#.'. */
const grid = (rows: string[]) => Uint8Array.from(rows.join('').split(''), (c) => (c === '#' ? 1 : 0));
const show = (m: ArrayLike<number>, w: number) =>
  Array.from({ length: m.length / w }, (_, y) => Array.from({ length: w }, (_, x) => (m[y * w + x] ? '#' : '.')).join(''));

describe('AMG helpers: NMS', () => {
  it('batchedNms keeps exactly what torchvision.ops.batched_nms keeps, in its order (nms fixture)', () => {
    const cases = loadCase('nms').cases as { boxes_xyxy: Box[]; scores: number[]; groups: number[]; iou_threshold: number; keep: number[] }[];
    expect(cases.length).to.equal(4);
    for (const c of cases) expect(batchedNms(c.boxes_xyxy, Float32Array.from(c.scores), c.groups, c.iou_threshold)).to.deep.equal(c.keep);
  });

  it('suppresses only within a group, strictly above the threshold', () => {
    const boxes: Box[] = [[0, 0, 10, 10], [1, 1, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60], [0, 0, 10, 5]];
    // IoU(0,1) = 81/100 and IoU(0,4) = 50/100: at 0.5 box 4 stays (not strictly above)
    expect(batchedNms(boxes, [0.9, 0.8, 0.7, 0.1, 0.3], [0, 0, 1, 0, 0], 0.7)).to.deep.equal([0, 2, 4, 3]);
    expect(batchedNms(boxes, [0.9, 0.8, 0.7, 0.1, 0.3], [0, 0, 1, 0, 0], 0.5)).to.deep.equal([0, 2, 4, 3]);
    expect(batchedNms(boxes, [0.9, 0.8, 0.7, 0.1, 0.3], [0, 0, 1, 0, 0], 0.49)).to.deep.equal([0, 2, 3]);
    expect(batchedNms(boxes, [0.9, 0.8, 0.7, 0.1, 0.3], [0, 0, 1, 0, 0], 0.9)).to.deep.equal([0, 1, 2, 4, 3]);
    // equal scores: index order decides who suppresses whom
    expect(batchedNms([[0, 0, 10, 10], [0, 0, 10, 10]], [0.5, 0.5], [0, 0], 0.7)).to.deep.equal([0]);
    expect(batchedNms([], [], [], 0.7)).to.deep.equal([]);
  });

  it('gives the same answer on the per-group path used above 1000 boxes', () => {
    // 600 pairs of boxes, IoU 90/110 within a pair; the pairs alternate between two groups
    const boxes: Box[] = [];
    const scores: number[] = [];
    const groups: number[] = [];
    for (let p = 0; p < 600; p++) {
      const x = (p % 30) * 20;
      const y = Math.floor(p / 30) * 20;
      boxes.push([x, y, x + 10, y + 10], [x + 1, y, x + 11, y + 10]);
      const first = 0.2 + p / 1000;
      scores.push(first, p % 3 === 0 ? first + 0.0005 : first - 0.0005);
      groups.push(p % 2, p % 2);
    }
    const keep = batchedNms(boxes, Float32Array.from(scores), groups, 0.7);
    // the higher-scoring box of each pair survives; pairs in other groups or far away do not interact
    const expected = Array.from({ length: 600 }, (_, p) => (p % 3 === 0 ? 2 * p + 1 : 2 * p));
    expected.sort((i, j) => Math.fround(scores[j]) - Math.fround(scores[i]) || i - j);
    expect(keep).to.deep.equal(expected);
  });
});

describe('AMG helpers: RLE', () => {
  for (const name of ['amg_truck', 'amg_truck_crops']) {
    it(`uncompressed RLE agrees with the reference's (${name}) and round-trips through the COCO string`, () => {
      const anns = loadCase(name).annotations as { rle?: UncompressedRle; area: number }[];
      const { masks, h, w } = caseMasks(name, 'masks');
      let checked = 0;
      anns.forEach((a, i) => {
        if (!a.rle) return;
        const rle = maskToRle(masks[i], h, w);
        expect(rle.size).to.deep.equal(a.rle.size);
        expect(rle.counts).to.deep.equal(a.rle.counts);
        expect(areaFromRle(rle)).to.equal(a.area);
        const coco = cocoEncodeRle(rle);
        expect(cocoDecodeRle(coco).counts).to.deep.equal(a.rle.counts);
        expect(Buffer.from(rleToMask(cocoDecodeRle(coco))).equals(Buffer.from(masks[i]))).to.equal(true);
        checked++;
      });
      expect(checked).to.equal(3);
    });
  }

  it('writes the pycocotools string of a small mask (worked by hand from the format)', () => {
    // column-major (h = 4): 0 | 1 1 1 | 0 0 | 1 1 1 1 | 0 0 0 0 0 0 -> counts [1, 3, 2, 4, 6];
    // the 4th and 5th counts are stored as differences to the count two before: 4-3 = 1, 6-2 = 4
    const mask = grid(['..#.', '#.#.', '##..', '##..']);
    const rle = maskToRle(mask, 4, 4);
    expect(rle).to.deep.equal({ size: [4, 4], counts: [1, 3, 2, 4, 6] });
    expect(cocoEncodeRle(rle)).to.deep.equal({ size: [4, 4], counts: '13214' });
    expect(Array.from(rleToMask(cocoDecodeRle({ size: [4, 4], counts: '13214' })))).to.deep.equal(Array.from(mask));
    // 40 = 8 + 1*32 -> chars 8|0x20 (+48 = 'X') then 1 ('1'); 33 - 40 = -7 -> 25 with the sign bit (+48 = 'I')
    expect(cocoEncodeRle({ size: [9, 9], counts: [3, 40, 5, 33] }).counts).to.equal('3X15I');
    expect(cocoDecodeRle({ size: [9, 9], counts: '3X15I' }).counts).to.deep.equal([3, 40, 5, 33]);
  });

  it('round-trips large and negative differences', () => {
    const counts = [0, 2 ** 31 - 5, 1, 3, 2 ** 30 + 7, 1, 0];
    expect(cocoDecodeRle(cocoEncodeRle({ size: [1, 1], counts })).counts).to.deep.equal(counts);
    expect(() => cocoDecodeRle({ size: [1, 1], counts: '3 ' })).to.throw(/Bad character in COCO RLE/);
  });

  it('starts with a zero run when the first pixel is set, and is column-major', () => {
    const m = [1, 0, 1, 1]; // 2x2 row-major: column-major order is 1,1,0,1
    expect(maskToRle(m, 2, 2).counts).to.deep.equal([0, 2, 1, 1]);
    expect(Array.from(rleToMask({ size: [2, 2], counts: [0, 2, 1, 1] }))).to.deep.equal(m);
    expect(() => rleToMask({ size: [2, 2], counts: [0, 2] })).to.throw(/RLE counts sum to 2/);
  });
});

describe('AMG helpers: grids and crops', () => {
  it('point grids follow numpy linspace over cell centres, x fastest', () => {
    expect(buildPointGrid(2)).to.deep.equal([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]);
    expect(buildPointGrid(1)).to.deep.equal([[0.5, 0.5]]);
    expect(buildPointGrid(3).slice(0, 3)).to.deep.equal([[1 / 6, 1 / 6], [1 / 6 + 1 / 3, 1 / 6], [5 / 6, 1 / 6]]);
    // cropNPointsDownscaleFactor 2 with 9 points per side: int(9/2) = 4, int(9/4) = 2
    expect(buildAllLayerPointGrids(9, 2, 2).map((g) => g.length)).to.deep.equal([81, 16, 4]);
  });

  it("the reference's prompt points are our grid points scaled to the crop (amg_truck, amg_truck_crops)", () => {
    for (const name of ['amg_truck', 'amg_truck_crops']) {
      const anns = loadCase(name).annotations as { point_coords: number[][]; crop_box: number[] }[];
      const n = (loadCase(name).params as { points_per_side: number }).points_per_side;
      const g = buildPointGrid(n);
      for (const a of anns) {
        const [cx, cy, cw, ch] = a.crop_box;
        const ours = g.map(([x, y]) => `${Math.fround(Math.fround(x * cw) + cx)},${Math.fround(Math.fround(y * ch) + cy)}`);
        expect(ours).to.include(`${a.point_coords[0][0]},${a.point_coords[0][1]}`);
      }
    }
  });

  it('crop boxes follow the reference layout', () => {
    const { boxes, layers } = generateCropBoxes(300, 450, 1, 512 / 1500);
    // overlap = int(512/1500 * 300 * 1) = 102; crop w = ceil((102 + 450) / 2) = 276, h = ceil((102 + 300) / 2) = 201
    expect(boxes).to.deep.equal([[0, 0, 450, 300], [0, 0, 276, 201], [0, 99, 276, 300], [174, 0, 450, 201], [174, 99, 450, 300]]);
    expect(layers).to.deep.equal([0, 1, 1, 1, 1]);
    // every crop the reference used in amg_truck_crops is one of ours
    const refCrops = new Set((loadCase('amg_truck_crops').annotations as { crop_box: number[] }[]).map((a) => a.crop_box.join()));
    const ours = boxes.map((b) => boxXyxyToXywh(b).join());
    for (const c of refCrops) expect(ours).to.include(c);
    // layer 2: 16 crops, overlap int(0.3413 * 300 * 0.5) = 51, w = ceil((3*51 + 450)/4) = 151, h = ceil((153 + 300)/4) = 114
    const two = generateCropBoxes(300, 450, 2, 512 / 1500);
    expect(two.boxes.length).to.equal(1 + 4 + 16);
    expect(two.boxes[5]).to.deep.equal([0, 0, 151, 114]);
    expect(two.boxes[6]).to.deep.equal([0, 63, 151, 177]);
    expect(two.boxes[20]).to.deep.equal([300, 189, 450, 300]);
  });

  it('uncrops boxes, points and masks; crops images', () => {
    expect(uncropBox([1, 2, 3, 4], [10, 20, 50, 60])).to.deep.equal([11, 22, 13, 24]);
    expect(uncropPoint([1.5, 2], [10, 20, 50, 60])).to.deep.equal([11.5, 22]);
    const m = uncropMask(grid(['#.', '.#']), [1, 2, 3, 4], 4, 3);
    expect(show(m, 3)).to.deep.equal(['...', '...', '.#.', '..#']);
    const img = { data: Uint8Array.from({ length: 4 * 3 * 3 }, (_, i) => i), width: 4, height: 3 };
    const c = cropImage(img, [1, 1, 3, 3]);
    expect([c.width, c.height]).to.deep.equal([2, 2]);
    // pixel (1,1) starts at byte (1*4+1)*3 = 15
    expect(Array.from(c.data)).to.deep.equal([15, 16, 17, 18, 19, 20, 27, 28, 29, 30, 31, 32]);
  });
});

describe('AMG helpers: mask measures', () => {
  it('stability score counts pixels above threshold +- offset', async () => {
    const logits = tf.tensor3d([[[-2, -0.5, 0.5], [1.5, 3, -1]], [[-3, -2, -1], [-1.5, -5, -9]]]);
    // mask 0: > 1 -> {1.5, 3} = 2, > -1 -> {-0.5, 0.5, 1.5, 3} = 4 -> 0.5; mask 1: 0 / 0
    const s = await expectNoLeak('stabilityScore', () => {
      const t = stabilityScore(logits, 0, 1);
      const d = t.dataSync();
      t.dispose();
      return Array.from(d);
    });
    expect(s[0]).to.equal(0.5);
    expect(Number.isNaN(s[1])).to.equal(true);
    const t2 = stabilityScore(logits, 0.25, 0.5); // > 0.75: 2, > -0.25: 3
    expect(Array.from(t2.dataSync())).to.deep.equal([Math.fround(2 / 3), NaN]);
    tf.dispose([logits, t2]);
  });

  it('batched mask boxes on the device match hand-found boxes (inclusive indices; empty -> zeros)', async () => {
    const masks = [
      grid(['......', '..#...', '......', '....#.', '......']),
      grid(['......', '......', '......', '......', '......']),
      grid(['#.....', '......', '......', '......', '.....#']),
      grid(['......', '......', '...#..', '......', '......']),
    ];
    const t = tf.tensor3d(Uint8Array.from(masks.flatMap((m) => Array.from(m))), [4, 5, 6], 'bool');
    const boxes = await expectNoLeak('batchedMaskToBox', () => {
      const b = batchedMaskToBox(t);
      const d = Array.from(b.dataSync());
      b.dispose();
      return d;
    });
    t.dispose();
    expect(boxes).to.deep.equal([2, 1, 4, 3, 0, 0, 0, 0, 0, 0, 5, 4, 3, 2, 3, 2]);
    expect(masks.map((m) => maskToBox(m, 5, 6)).flat()).to.deep.equal(boxes);
  });

  it('flags boxes near a crop edge that is not an image edge', () => {
    // crop [100,0,300,200] in a 400x200 image: its left edge is inside the image, its top is the image's
    expect(isBoxNearCropEdge([5, 50, 80, 90], [100, 0, 300, 200], [0, 0, 400, 200])).to.equal(true);
    expect(isBoxNearCropEdge([21, 50, 80, 90], [100, 0, 300, 200], [0, 0, 400, 200])).to.equal(false);
    expect(isBoxNearCropEdge([50, 5, 80, 90], [100, 0, 300, 200], [0, 0, 400, 200])).to.equal(false);
    expect(isBoxNearCropEdge([50, 50, 185, 90], [100, 0, 300, 200], [0, 0, 400, 200])).to.equal(true);
    expect(isBoxNearCropEdge([0, 0, 0, 0], [0, 0, 400, 200], [0, 0, 400, 200])).to.equal(false);
  });

  it('removes holes and islands below the area, 8-connected', () => {
    const m = grid([
      '#####...',
      '#.#.#...',
      '#####..#',
      '........',
      '......##',
      '.....###',
    ]);
    // background components: the holes (1,1) and (1,3) of 1 px each, and the large outside
    const holes = removeSmallRegions(m, 6, 8, 2, 'holes');
    expect(holes.changed).to.equal(true);
    expect(show(holes.mask, 8)).to.deep.equal(['#####...', '#####...', '#####..#', '........', '......##', '.....###']);
    // foreground components: the ring (13 px), the pixel (2,7) (1 px; (4,6) is two rows below) and the corner (5 px)
    const islands = removeSmallRegions(m, 6, 8, 2, 'islands');
    expect(show(islands.mask, 8)).to.deep.equal(['#####...', '#.#.#...', '#####...', '........', '......##', '.....###']);
    expect(removeSmallRegions(m, 6, 8, 1, 'islands').changed).to.equal(false);
    // every island small: the largest stays
    const all = removeSmallRegions(m, 6, 8, 100, 'islands');
    expect(show(all.mask, 8)).to.deep.equal(['#####...', '#.#.#...', '#####...', '........', '........', '........']);
    // diagonal neighbours are connected: this 2-pixel island is not below 2
    expect(removeSmallRegions(grid(['#.', '.#']), 2, 2, 2, 'islands').changed).to.equal(false);
  });
});
