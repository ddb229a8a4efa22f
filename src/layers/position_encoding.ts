/**
 * Sine position encoding of a feature grid (the reference's PositionEmbeddingSine with
 * normalize=True, scale 2*pi), used by the FPN neck (256 features) and the memory encoder (64).
 * It depends only on the grid size, so it is computed on the CPU.
 */
import * as tf from '@tensorflow/tfjs';

const f = Math.fround;

/**
 * The encoding as NHWC data [h, w, numPosFeats]: the first half encodes y, the second x,
 * each as interleaved (sin, cos) pairs of geometrically spaced frequencies. Mirrors the
 * reference's float32 arithmetic step by step.
 */
export function sinePositionData(h: number, w: number, numPosFeats: number, temperature = 10000): Float32Array {
  const half = numPosFeats / 2;
  const scale = f(2 * Math.PI);
  const dimT = new Float32Array(half);
  for (let i = 0; i < half; i++) dimT[i] = f(Math.pow(temperature, f((2 * Math.floor(i / 2)) / half)));
  const embed = (i: number, n: number) => f(f(f(i + 1) / f(n + 1e-6)) * scale);
  const out = new Float32Array(h * w * numPosFeats);
  const ys = new Float32Array(half);
  const xs = new Float32Array(half);
  const fill = (dst: Float32Array, e: number) => {
    for (let i = 0; i < half; i += 2) {
      dst[i] = Math.sin(f(e / dimT[i]));
      dst[i + 1] = Math.cos(f(e / dimT[i + 1]));
    }
  };
  for (let y = 0; y < h; y++) {
    fill(ys, embed(y, h));
    for (let x = 0; x < w; x++) {
      fill(xs, embed(x, w));
      const o = (y * w + x) * numPosFeats;
      out.set(ys, o);
      out.set(xs, o + half);
    }
  }
  return out;
}

/** The encoding as a new [1, h, w, numPosFeats] tensor (owners cache it: it depends only on the size). */
export function sinePositionEncoding(h: number, w: number, numPosFeats: number, temperature = 10000): tf.Tensor4D {
  return tf.tensor4d(sinePositionData(h, w, numPosFeats, temperature), [1, h, w, numPosFeats]);
}

/**
 * Random-Fourier position encoding (the reference's PositionEmbeddingRandom): coordinates in
 * [0, 1] are mapped to 2c - 1, projected by a learned gaussian matrix [2, F] and encoded as
 * [sin(2 pi p), cos(2 pi p)] -> 2F features.
 */
export function randomFourierEncoding(coords01: tf.Tensor, gaussian: tf.Tensor2D): tf.Tensor {
  return tf.tidy(() => {
    const shape = coords01.shape;
    const flat = tf.reshape(tf.sub(tf.mul(coords01, 2), 1), [-1, 2]) as tf.Tensor2D;
    const p = tf.mul(tf.matMul(flat, gaussian), 2 * Math.PI);
    const out = tf.concat([tf.sin(p), tf.cos(p)], -1);
    return tf.reshape(out, [...shape.slice(0, -1), 2 * gaussian.shape[1]]);
  });
}
