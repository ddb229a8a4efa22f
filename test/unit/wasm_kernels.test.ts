import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend';
import { transposeInto } from '../../src/ops/transpose';

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

  it('Transpose matches the transpose computed on the host for every rank, dtype and permutation', () => {
    // host reference: element by element through tf.buffer's index arithmetic
    const hostTranspose = (x: tf.Tensor, perm: number[]) => {
      const src = tf.buffer(x.shape, x.dtype, x.dataSync());
      const out = tf.buffer(
        perm.map((a) => x.shape[a]),
        x.dtype,
      );
      for (let i = 0; i < out.size; i++) {
        const loc = out.indexToLoc(i);
        const at = new Array<number>(x.rank);
        perm.forEach((a, o) => (at[a] = loc[o]));
        out.values[i] = src.get(...at) as number;
      }
      return Array.from(out.values as ArrayLike<number>);
    };
    const cases: [number[], number[]][] = [
      [
        [16, 40, 64],
        [0, 2, 1],
      ], // the decoder's scores (tiles and partial tiles)
      [
        [37, 70],
        [1, 0],
      ],
      [
        [3, 5, 2, 40],
        [0, 2, 1, 3],
      ], // runs that stay contiguous (40: copied whole)
      [
        [3, 5, 2, 7],
        [0, 2, 1, 3],
      ], // short runs
      [
        [2, 3, 4, 5],
        [0, 2, 3, 1],
      ], // axes that merge
      [
        [4, 1, 6, 1, 3],
        [4, 2, 1, 0, 3],
      ], // size-1 axes
      [
        [2, 3, 2, 3, 2, 3],
        [5, 3, 1, 0, 2, 4],
      ], // rank 6
      [[5], [0]],
      [
        [3, 0, 4],
        [2, 0, 1],
      ], // empty
    ];
    let seed = 7;
    const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    for (let t = 0; t < 30; t++) {
      const rank = 2 + Math.floor(rand() * 4);
      const shape = Array.from({ length: rank }, () => 1 + Math.floor(rand() * 9));
      const perm = Array.from({ length: rank }, (_, i) => i).sort(() => rand() - 0.5);
      cases.push([shape, perm]);
    }
    for (const [shape, perm] of cases) {
      for (const dtype of ['float32', 'int32', 'bool'] as const) {
        const n = shape.reduce((a, b) => a * b, 1);
        const x =
          dtype === 'bool'
            ? tf.tensor(
                Array.from({ length: n }, (_, i) => i % 3 === 0),
                shape,
                'bool',
              )
            : tf.tensor(
                Array.from({ length: n }, (_, i) => i * 1.5 - 7),
                shape,
                dtype,
              );
        const got = tf.transpose(x, perm);
        expect(got.shape, `${dtype} ${shape} ${perm}`).to.deep.equal(perm.map((a) => shape[a]));
        const want = hostTranspose(x, perm);
        expect(Array.from(got.dataSync()), `${dtype} ${shape} ${perm}`).to.deep.equal(want);
        // the host function itself, also for the transposes the kernel leaves to the backend's
        const direct = new Float32Array(n);
        transposeInto(Float32Array.from(x.dataSync() as Float32Array), shape, perm, direct);
        expect(Array.from(direct), `transposeInto ${dtype} ${shape} ${perm}`).to.deep.equal(want);
        tf.dispose([x, got]);
      }
    }
  });
});
