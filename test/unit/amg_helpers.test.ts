import { expect } from 'chai';
import { caseMasks, loadCase } from '../helpers';
import { batchedNms } from '../../src/predictor/amg/nms';
import {
  areaFromRle,
  cocoDecodeRle,
  cocoEncodeRle,
  maskToRle,
  rleToMask,
  type UncompressedRle,
} from '../../src/predictor/amg/rle';
import {
  buildAllLayerPointGrids,
  buildPointGrid,
  generateCropBoxes,
  isBoxNearCropEdge,
  maskToBox,
  type Box,
} from '../../src/predictor/amg/geometry';

describe('automatic mask generator helpers', () => {
  it('batchedNms keeps exactly what torchvision.ops.batched_nms keeps, in its order (nms fixture)', () => {
    const cases = loadCase('nms').cases as {
      boxes_xyxy: Box[];
      scores: number[];
      groups: number[];
      iou_threshold: number;
      keep: number[];
    }[];
    expect(cases.length).to.be.greaterThan(0);
    for (const c of cases) expect(batchedNms(c.boxes_xyxy, c.scores, c.groups, c.iou_threshold)).to.deep.equal(c.keep);
  });

  it('batchedNms: a higher-scoring overlapping box suppresses only within its group', () => {
    const boxes: Box[] = [
      [0, 0, 10, 10],
      [1, 1, 10, 10],
      [1, 1, 10, 10],
      [50, 50, 60, 60],
    ];
    // IoU(0,1) = 81/100: suppressed at 0.7; box 2 is in another group
    expect(batchedNms(boxes, [0.9, 0.8, 0.7, 0.1], [0, 0, 1, 0], 0.7)).to.deep.equal([0, 2, 3]);
    expect(batchedNms(boxes, [0.9, 0.8, 0.7, 0.1], [0, 0, 1, 0], 0.9)).to.deep.equal([0, 1, 2, 3]);
  });

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
        const back = rleToMask(cocoDecodeRle(cocoEncodeRle(rle)));
        expect(Buffer.from(back).equals(Buffer.from(masks[i]))).to.equal(true);
        checked++;
      });
      expect(checked).to.equal(3);
    });
  }

  it('cocoEncodeRle writes pycocotools strings (worked by hand from the format)', () => {
    // counts [3, 40, 5, 33]: "3" -> '3'; 40 = 0b01000 + 1*32 -> chars ('8'+32 cont) ... computed:
    // 3 -> 3+48 = '3'; 40 -> low 5 bits 8 | cont 0x20 = 40 -> 'X', then 1 -> '1';
    // 5 -> '5'; 33 - 40 = -7 -> low bits 25 (0x19, sign bit set, rest -1) -> 25+48 = 'I'
    const rle = { size: [9, 9] as [number, number], counts: [3, 40, 5, 33] };
    expect(cocoEncodeRle(rle).counts).to.equal('3X15I');
    expect(cocoDecodeRle({ size: [9, 9], counts: '3X15I' }).counts).to.deep.equal([3, 40, 5, 33]);
  });

  it('RLE starts with a zero run when the first pixel is set, and is column-major', () => {
    const m = [1, 0, 1, 1]; // 2x2 row-major: column-major order is 1,1,0,1
    expect(maskToRle(m, 2, 2).counts).to.deep.equal([0, 2, 1, 1]);
    expect(Array.from(rleToMask({ size: [2, 2], counts: [0, 2, 1, 1] }))).to.deep.equal(m);
  });

  it('point grids and crop boxes follow the reference layout', () => {
    expect(buildPointGrid(2)).to.deep.equal([
      [0.25, 0.25],
      [0.75, 0.25],
      [0.25, 0.75],
      [0.75, 0.75],
    ]);
    expect(buildAllLayerPointGrids(8, 1, 2).map((g) => g.length)).to.deep.equal([64, 16]);
    const { boxes, layers } = generateCropBoxes(300, 450, 1, 512 / 1500);
    // overlap = int(512/1500 * 300 * 1) = 102; crop w = ceil((102 + 450) / 2) = 276, h = ceil((102 + 300) / 2) = 201
    expect(boxes).to.deep.equal([
      [0, 0, 450, 300],
      [0, 0, 276, 201],
      [0, 99, 276, 300],
      [174, 0, 450, 201],
      [174, 99, 450, 300],
    ]);
    expect(layers).to.deep.equal([0, 1, 1, 1, 1]);
  });

  it('mask boxes and crop-edge tests', () => {
    const m = new Uint8Array(5 * 6);
    m[1 * 6 + 2] = 1;
    m[3 * 6 + 4] = 1;
    expect(maskToBox(m, 5, 6)).to.deep.equal([2, 1, 4, 3]);
    expect(maskToBox(new Uint8Array(4), 2, 2)).to.deep.equal([0, 0, 0, 0]);
    // crop [100,0,300,200] in a 400x200 image: touching the crop's left edge is cut off, its top edge is the image's
    expect(isBoxNearCropEdge([5, 50, 80, 90], [100, 0, 300, 200], [0, 0, 400, 200])).to.equal(true);
    expect(isBoxNearCropEdge([50, 5, 80, 90], [100, 0, 300, 200], [0, 0, 400, 200])).to.equal(false);
  });
});
