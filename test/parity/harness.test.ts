import { expect } from 'chai';
import * as fs from 'fs';
import {
  fixturePath,
  formulaWeight,
  readNpy,
  unpackMasks,
  loadCase,
  maskIoU,
  compareArrays,
  sampleNchwFromNhwc,
  nhwcToNchw,
} from '../helpers';
import { loadManifest } from '../../src/testing/manifest';

describe('fidelity harness', () => {
  const check = JSON.parse(fs.readFileSync(fixturePath('ckpt/formula_check.json'), 'utf8')) as Record<
    string,
    Record<string, { shape: number[]; first8: number[]; sum_float64: number } | number>
  >;

  for (const name of Object.keys(check)) {
    it(`formula weights match formula_check.json bit for bit (${name})`, () => {
      const entries = check[name];
      const manifest = loadManifest(name);
      const shapes = new Map(manifest.map(([k, s]) => [k, s]));
      let checked = 0;
      for (const [key, ref] of Object.entries(entries)) {
        if (typeof ref === 'number') continue;
        expect(shapes.get(key), key).to.deep.equal(ref.shape);
        const w = formulaWeight(key, ref.shape);
        expect(Array.from(w.slice(0, 8)), `${key} first8`).to.deep.equal(ref.first8.slice(0, Math.min(8, w.length)));
        let s = 0;
        for (const v of w) s += v;
        expect(Math.abs(s - ref.sum_float64), `${key} sum`).to.be.at.most(
          1e-9 * Math.max(1, Math.abs(ref.sum_float64)),
        );
        checked++;
      }
      expect(checked).to.be.greaterThan(0);
      const total = entries['__all_keys_sum_float64__'] as number;
      let all = 0;
      for (const [key, shape] of manifest) for (const v of formulaWeight(key, shape)) all += v;
      expect(Math.abs(all - total) / Math.abs(total), 'all keys sum').to.be.at.most(1e-9);
    });
  }

  it('reads .npy tensors and packbits masks with the recorded statistics', () => {
    const c = loadCase('image_truck');
    const ious = readNpy(fixturePath('image_truck', c.tensors.point1_ious.file));
    expect(ious.shape).to.deep.equal([3]);
    expect(ious.data[0]).to.be.closeTo(0.5, 0.1);
    const packed = readNpy(fixturePath('image_truck', c.tensors.point1_masks.file)).data as Uint8Array;
    const masks = unpackMasks(packed, 3, 1200, 1800);
    const areas = masks.map((m) => m.reduce((a, b) => a + b, 0));
    expect(areas).to.deep.equal(c.tensors.point1_masks.area);
  });

  it('compares tensors relative to the reference std and reports the worst element', () => {
    const r = compareArrays('t', [1, 2, 3.5], [1, 2, 3]);
    expect(r.worstIndex).to.equal(2);
    expect(r.maxAbs).to.equal(0.5);
    expect(compareArrays('nan', [NaN], [1]).relMax).to.equal(Infinity);
    expect(maskIoU([1, 1, 0, 0], [1, 0, 1, 0])).to.be.closeTo(1 / 3, 1e-12);
    // NHWC (1,2,2,3) -> NCHW sampling picks the same elements as flattening NCHW
    const nhwc = Array.from({ length: 12 }, (_, i) => i);
    const nchw = nhwcToNchw(nhwc, 1, 2, 2, 3);
    const sampled = sampleNchwFromNhwc(nhwc, [1, 3, 2, 2], 5);
    expect(Array.from(sampled)).to.deep.equal([nchw[0], nchw[5], nchw[10]]);
  });
});
