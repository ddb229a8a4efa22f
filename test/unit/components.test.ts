import { expect } from 'chai';
import { connectedComponents, componentAreas } from '../../src/ops/components';

describe('connected components (8-connectivity)', () => {
  it('joins diagonal neighbours and labels in raster order', () => {
    // 1 . . 1
    // . 1 . 1
    // . . . .
    // 1 1 . .
    const m = [1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0];
    const c = connectedComponents(m, 4, 4);
    expect(c.count).to.equal(3);
    expect(Array.from(c.areas)).to.deep.equal([0, 2, 2, 2]);
    expect(c.labels[0]).to.equal(1);
    expect(c.labels[5]).to.equal(1);
    expect(c.labels[3]).to.equal(2);
    expect(c.labels[12]).to.equal(3);
    expect(Array.from(componentAreas(m, 4, 4))).to.deep.equal([2, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 2, 2, 0, 0]);
  });

  it('rejects a mask of the wrong size', () => {
    expect(() => connectedComponents([1, 0], 2, 2)).to.throw(/expected 2x2/);
  });
});
