import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend';

describe('wasm kernel fixes', () => {
  before(async function () {
    const info = await initBackend();
    if (info.tfBackend !== 'wasm') this.skip();
  });

  it('Slice copies from the heap and matches the slice taken on the host for every rank, dtype and layout', () => {
    const cases: [number[], number[], number[]][] = [
      [[7], [2], [4]],
      [
        [5, 6],
        [1, 2],
        [3, -1],
      ], // strided rows
      [
        [4, 3, 5],
        [2, 0, 0],
        [1, -1, -1],
      ], // one contiguous window
      [
        [4, 3, 5],
        [1, 1, 2],
        [2, 2, 3],
      ],
      [
        [2, 3, 4, 5],
        [1, 0, 1, 2],
        [1, 3, 2, 3],
      ],
      [
        [2, 2, 3, 2, 3],
        [0, 1, 1, 0, 1],
        [2, 1, 2, 2, 2],
      ], // rank 5
      [
        [3, 4, 40],
        [1, 1, 3],
        [2, 3, 33],
      ], // runs of 32 or more go through subarray copies
      [
        [3, 4],
        [1, 0],
        [0, 4],
      ], // empty
    ];
    for (const [shape, begin, size] of cases) {
      for (const dtype of ['float32', 'int32', 'bool'] as const) {
        const n = shape.reduce((a, b) => a * b, 1);
        const values = Array.from({ length: n }, (_, i) => (dtype === 'bool' ? i % 3 === 0 : i * 1.5 - 7));
        const x = tf.tensor(dtype === 'bool' ? values.map(Boolean) : (values as number[]), shape, dtype);
        const got = tf.slice(x, begin, size);
        const want = tf.buffer(shape, dtype, x.dataSync());
        const expected = tf.tidy(() => {
          // the same slice computed on the host from the buffer
          const [b, s] = tf.slice_util.parseSliceParams(x, begin, size);
          const out = tf.buffer(s, dtype);
          for (let i = 0; i < out.size; i++) {
            const idx = out.indexToLoc(i).map((v, a) => v + b[a]);
            out.values[i] = want.get(...idx) as number;
          }
          return out.values;
        });
        expect(Array.from(got.dataSync()), `${dtype} ${shape} ${begin} ${size}`).to.deep.equal(Array.from(expected));
        tf.dispose([x, got]);
      }
    }
  });

  it('Slice of a scalar-like and of a tensor made after heap growth', () => {
    const big = tf.zeros([4096, 1024]); // 16 MB: may grow the heap
    const x = tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]);
    const s = tf.slice(x, [1, 0, 1], [1, 2, 1]);
    expect(Array.from(s.dataSync())).to.deep.equal([6, 8]);
    tf.dispose([big, x, s]);
  });
});
