import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { tinyImageModel } from '../models';
import { batchMatMul } from '../../src/layers/attention';
import { expectClose } from '../../src/testing/compare';

describe('decoder attention reassociated over image tokens (tokenToImage, imageToToken)', () => {
  // 3 prompt sets of 8 tokens over 256 image tokens, per prompt set (as after the first block)
  const [b, nt, ni, c] = [3, 8, 256, 256];
  const seeded = (shape: [number, number, number], seed: number) =>
    tf.randomNormal(shape, 0, 1, 'float32', seed) as tf.Tensor3D;

  it('token-to-image: the same as projecting keys and values, with and without a shared image', () => {
    const att = tinyImageModel().maskDecoder.transformer.layers[1].crossAttnTokenToImage;
    expect(att.reassociates(nt)).to.equal(true);
    const q = seeded([b, nt, c], 1);
    for (const ib of [b, 1]) {
      const keys = seeded([ib, ni, c], 2);
      const values = seeded([ib, ni, c], 3);
      const plain = att.forward(q, keys, values);
      const reassociated = att.tokenToImage(q, keys, values);
      expect(reassociated.shape).to.deep.equal([b, nt, c]);
      expectClose(`tokenToImage, image batch ${ib}`, reassociated.dataSync(), plain.dataSync(), 1e-5);
      tf.dispose([keys, values, plain, reassociated]);
    }
    q.dispose();
  });

  it('image-to-token: the same as projecting the image tokens, from keys or from their q projection', () => {
    const att = tinyImageModel().maskDecoder.transformer.layers[1].crossAttnImageToToken;
    const k = seeded([b, nt, c], 4);
    const v = seeded([b, nt, c], 5);
    for (const ib of [b, 1]) {
      const image = seeded([ib, ni, c], 6);
      const plain = att.forward(image, k, v);
      const fromKeys = att.imageToToken({ keys: image }, k, v);
      const q = att.qProj.forward(image) as tf.Tensor3D;
      const fromQ = att.imageToToken({ q }, k, v);
      expect(fromKeys.shape).to.deep.equal([b, ni, c]);
      expectClose(`imageToToken from keys, image batch ${ib}`, fromKeys.dataSync(), plain.dataSync(), 1e-5);
      expectClose(`imageToToken from q, image batch ${ib}`, fromQ.dataSync(), plain.dataSync(), 1e-5);
      tf.dispose([image, plain, fromKeys, q, fromQ]);
    }
    tf.dispose([k, v]);
  });

  it('batchMatMul matches tf.matMul, broadcasting a batch of 1', () => {
    const a = seeded([4, 5, 6], 7);
    const one = seeded([1, 6, 3], 8);
    const got = batchMatMul(a, one);
    const want = tf.matMul(a, tf.tile(one, [4, 1, 1]));
    expectClose('batchMatMul', got.dataSync(), want.dataSync(), 1e-6);
    tf.dispose([a, one, got, want]);
  });
});
