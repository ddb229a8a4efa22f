/**
 * SAM's multi-head attention with an optional internal downsampling of the embedding
 * (q/k/v project to embeddingDim / downsampleRate), used by the two-way transformer.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Layer, shapeList, type Shape } from './base';
import { Linear } from './common';

/**
 * Scaled dot-product attention of q [B, Nq, C] over k, v [B, Nk, C] with `heads` heads.
 * With one head and batch 1 it stays on rank-2 matMuls (the fast wasm path).
 */
export function multiHeadAttention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, heads: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, nq, c] = q.shape;
    const nk = k.shape[1];
    const d = c / heads;
    const scale = 1 / Math.sqrt(d);
    if (b === 1 && heads === 1) {
      const p = tf.softmax(tf.matMul(tf.mul(q.reshape([nq, c]), scale) as tf.Tensor2D, tf.transpose(k.reshape([nk, c]))));
      return tf.matMul(p, v.reshape([nk, c])).reshape([1, nq, c]);
    }
    const split = (x: tf.Tensor3D, n: number) =>
      tf.transpose(tf.reshape(x, [b, n, heads, d]), [0, 2, 1, 3]).reshape([b * heads, n, d]) as tf.Tensor3D;
    const qh = split(tf.mul(q, scale) as tf.Tensor3D, nq);
    const kT = tf.transpose(tf.reshape(k, [b, nk, heads, d]), [0, 2, 3, 1]).reshape([b * heads, d, nk]) as tf.Tensor3D;
    const p = tf.softmax(tf.matMul(qh, kT));
    const o = tf.matMul(p, split(v, nk));
    return tf.transpose(o.reshape([b, heads, nq, d]), [0, 2, 1, 3]).reshape([b, nq, c]) as tf.Tensor3D;
  });
}

export class Attention extends Sam2Layer {
  static className = 'Sam2Attention';
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly outProj: Linear;

  constructor(
    readonly key: string,
    embeddingDim: number,
    readonly numHeads: number,
    downsampleRate = 1,
    kvInDim = embeddingDim,
  ) {
    super();
    this.remember<typeof Attention>(key, embeddingDim, numHeads, downsampleRate, kvInDim);
    const internal = embeddingDim / downsampleRate;
    this.qProj = this.child(new Linear(`${key}.q_proj`, embeddingDim, internal));
    this.kProj = this.child(new Linear(`${key}.k_proj`, kvInDim, internal));
    this.vProj = this.child(new Linear(`${key}.v_proj`, kvInDim, internal));
    this.outProj = this.child(new Linear(`${key}.out_proj`, internal, embeddingDim));
  }

  /** q [B, Nq, C], k/v [B, Nk, Ckv] -> [B, Nq, C]. */
  forward(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const out = multiHeadAttention(
        this.qProj.forward(q) as tf.Tensor3D,
        this.kProj.forward(k) as tf.Tensor3D,
        this.vProj.forward(v) as tf.Tensor3D,
        this.numHeads,
      );
      return this.outProj.forward(out) as tf.Tensor3D;
    });
  }

  /** inputs [q, k, v]. */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [q, k, v] = inputs as tf.Tensor3D[];
    return this.forward(q, k, v);
  }

  /** [q [B, Nq, C], k, v] -> [B, Nq, C]. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return this.outProj.computeOutputShape(shapeList(inputShape)[0]);
  }
}
tf.serialization.registerClass(Attention);
