/**
 * SAM's multi-head attention with an optional internal downsampling of the embedding
 * (q/k/v project to embeddingDim / downsampleRate), used by the two-way transformer.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Layer, shapeList, type Shape } from './base';
import { simdKernelsActive } from '../wasm_kernels';
import { Linear, softmax } from './common';

/** Values of a [heads, 1, C] mask: 1 where channel c belongs to head h (c / d === h), else 0. */
export function headMaskValues(heads: number, c: number): Float32Array {
  const d = c / heads;
  return Float32Array.from({ length: heads * c }, (_, i) => (Math.floor((i % c) / d) === Math.floor(i / c) ? 1 : 0));
}

function headMask(heads: number, c: number): tf.Tensor3D {
  return tf.tensor3d(headMaskValues(heads, c), [heads, 1, c]);
}

/**
 * a [Ba, m, k] x b [Bb, k, n] -> [B, m, n], a batch of 1 broadcast over the other. On wasm with
 * our SIMD kernel one batched matMul; without it one rank-2 matMul per item: those go through
 * XNNPACK on both cores, tf.js's batched ones through a single-threaded loop (~20x slower).
 */
export function batchMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const n = Math.max(a.shape[0], b.shape[0]);
    // our SIMD kernel (src/wasm_kernels.ts): one call for the batch, both threads, and no
    // packing of each item's right operand (XNNPACK packs every fresh one)
    if (n > 1 && b.shape[2] % 4 === 0 && simdKernelsActive()) return tf.matMul(a, b);
    if (n > 1 && tf.getBackend() !== 'wasm') {
      const full = (x: tf.Tensor3D) => (x.shape[0] === n ? x : (tf.add(x, tf.zeros([n, 1, 1])) as tf.Tensor3D));
      return tf.matMul(full(a), full(b));
    }
    const item = (x: tf.Tensor3D, i: number) =>
      tf.reshape(x.shape[0] === 1 ? x : tf.slice(x, [i, 0, 0], [1, -1, -1]), [x.shape[1], x.shape[2]]) as tf.Tensor2D;
    const parts = Array.from({ length: n }, (_, i) => tf.matMul(item(a, i), item(b, i)));
    return tf.reshape(n === 1 ? parts[0] : tf.concat(parts, 0), [n, a.shape[1], b.shape[2]]) as tf.Tensor3D;
  });
}

/**
 * Scaled dot-product attention of q [Bq, Nq, C] over k, v [Bk, Nk, C] with `heads` heads; a
 * batch of 1 broadcasts over the other's batch. The decoder's attentions have 5-8 prompt tokens
 * on one side: there the heads are laid out block-diagonally (each head's rows keep only its own
 * channels, the others are 0), so all heads are one rank-2 matMul on the fast wasm path instead
 * of a batched matMul per head (the slow path) and 4-D transposes: the same products and sums
 * (adding exact zeros), ~8x the MACs of a few million. With the per-image precompute
 * (MaskDecoder.precomputeImage) one click went 1.1-2x faster (alternating runs, loaded machine).
 */
export function multiHeadAttention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, heads: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [bq, nq, c] = q.shape;
    const [bk, nk] = k.shape;
    const b = Math.max(bq, bk);
    const d = c / heads;
    const scale = 1 / Math.sqrt(d);
    if (heads > 1 && bk === 1 && bq * heads * nq <= 1024) {
      // few queries (prompt tokens) over one set of keys: block-diagonal queries
      const mask = headMask(heads, c);
      const qb = tf.reshape(tf.mul(tf.expandDims(tf.mul(q, scale), 1), mask), [bq * heads * nq, c]) as tf.Tensor2D; // [bq, heads, nq, C]
      // scores [bq*heads*nq, nk]: transposing the smaller of the key matrix and the scores
      const k2 = tf.reshape(k, [nk, c]) as tf.Tensor2D;
      const scores = qb.shape[0] < c ? tf.transpose(tf.matMul(k2, tf.transpose(qb))) : tf.matMul(qb, tf.transpose(k2));
      const p = softmax(scores as tf.Tensor2D);
      const o = tf.reshape(tf.matMul(p, tf.reshape(v, [nk, c]) as tf.Tensor2D), [bq, heads, nq, c]);
      return tf.sum(tf.mul(o, mask), 1) as tf.Tensor3D; // each channel from its own head
    }
    if (heads > 1 && b === 1 && heads * nk <= 256) {
      // many queries (image tokens) over few keys: block-diagonal keys and values
      const mask = headMask(heads, c);
      const kb = tf.reshape(tf.mul(tf.reshape(k, [1, nk, c]), mask), [heads * nk, c]);
      const vb = tf.reshape(tf.mul(tf.reshape(v, [1, nk, c]), mask), [heads * nk, c]) as tf.Tensor2D;
      const s = tf.matMul(tf.mul(tf.reshape(q, [nq, c]), scale) as tf.Tensor2D, tf.transpose(kb) as tf.Tensor2D); // [nq, heads * nk]
      const p = tf.reshape(softmax(tf.reshape(s, [nq, heads, nk])), [nq, heads * nk]) as tf.Tensor2D;
      return tf.reshape(tf.matMul(p, vb), [1, nq, c]) as tf.Tensor3D;
    }
    if (b > 1 && heads > 1 && tf.getBackend() === 'wasm') {
      // one prompt set at a time: the paths above run all heads as rank-2 matMuls (XNNPACK, both
      // cores), where the batched matMul below runs on wasm's single-threaded loop (~20x slower)
      const item = (x: tf.Tensor3D, i: number) =>
        x.shape[0] === 1 ? x : (tf.slice(x, [i, 0, 0], [1, -1, -1]) as tf.Tensor3D);
      return tf.concat(
        Array.from({ length: b }, (_, i) => multiHeadAttention(item(q, i), item(k, i), item(v, i), heads)),
        0,
      ) as tf.Tensor3D;
    }
    const full = (x: tf.Tensor3D) => (x.shape[0] === b ? x : (tf.add(x, tf.zeros([b, 1, 1])) as tf.Tensor3D)); // Tile is slow on wasm
    [q, k, v] = [full(q), full(k), full(v)];
    if (b === 1 && heads === 1) {
      const p = softmax(tf.matMul(tf.mul(q.reshape([nq, c]), scale) as tf.Tensor2D, tf.transpose(k.reshape([nk, c]))));
      return tf.matMul(p, v.reshape([nk, c])).reshape([1, nq, c]);
    }
    const split = (x: tf.Tensor3D, n: number) =>
      tf.transpose(tf.reshape(x, [b, n, heads, d]), [0, 2, 1, 3]).reshape([b * heads, n, d]) as tf.Tensor3D;
    const qh = split(tf.mul(q, scale) as tf.Tensor3D, nq);
    const kT = tf.transpose(tf.reshape(k, [b, nk, heads, d]), [0, 2, 3, 1]).reshape([b * heads, d, nk]) as tf.Tensor3D;
    const p = softmax(tf.matMul(qh, kT));
    const o = tf.matMul(p, split(v, nk));
    return tf.transpose(o.reshape([b, heads, nq, d]), [0, 2, 1, 3]).reshape([b, nq, c]) as tf.Tensor3D;
  });
}

/** Projections an Attention can be given instead of computing them (same for every prompt). */
export interface Projected {
  q?: tf.Tensor3D;
  k?: tf.Tensor3D;
  v?: tf.Tensor3D;
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

  /**
   * q [B, Nq, C], k/v [B, Nk, Ckv] -> [B, Nq, C]. `projected` supplies projections computed
   * earlier (their input is then not read: pass it as null).
   */
  forward(q: tf.Tensor3D | null, k: tf.Tensor3D | null, v: tf.Tensor3D | null, projected: Projected = {}): tf.Tensor3D {
    return tf.tidy(() => {
      const out = multiHeadAttention(
        projected.q ?? (this.qProj.forward(q as tf.Tensor3D) as tf.Tensor3D),
        projected.k ?? (this.kProj.forward(k as tf.Tensor3D) as tf.Tensor3D),
        projected.v ?? (this.vProj.forward(v as tf.Tensor3D) as tf.Tensor3D),
        this.numHeads,
      );
      return this.outProj.forward(out) as tf.Tensor3D;
    });
  }

  /**
   * Attention of a few tokens over image tokens that differ per prompt set, with the output
   * projection: q [B, Nt, C] (tokens), keys [B or 1, Ni, C] (image + encoding), values [B or 1,
   * Ni, C] (image). Reassociated so no image token is projected: per head h the scores are
   * (q_h Wk_h^T) keys^T (q_h . bk_h is the same for every key and cancels in the softmax) and the
   * output is (p_h values) Wv_h + bv_h (softmax rows sum to 1). With Nt x heads << Ni that is half
   * the MACs of projecting keys and values; the same sums in another order.
   */
  tokenToImage(q: tf.Tensor3D, keys: tf.Tensor3D, values: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, nt] = q.shape;
      const cIn = keys.shape[2];
      const heads = this.numHeads;
      const c = this.qProj.outDim;
      const mask = headMask(heads, c);
      const qp = tf.mul(this.qProj.forward(q), 1 / Math.sqrt(c / heads));
      // block-diagonal queries [B * heads * Nt, c]: row (h, t) keeps head h's channels
      const qb = tf.reshape(tf.mul(tf.expandDims(qp, 1), mask), [b * heads * nt, c]) as tf.Tensor2D;
      const a = tf.reshape(tf.matMul(qb, tf.transpose(this.kProj.weight.read()) as tf.Tensor2D), [b, heads * nt, cIn]);
      // scores^T [B, Ni, heads * Nt] keep the big operand untransposed; transpose the result
      const scores = tf.transpose(batchMatMul(keys, tf.transpose(a, [0, 2, 1]) as tf.Tensor3D), [0, 2, 1]);
      const p = softmax(scores) as tf.Tensor3D;
      const pooled = batchMatMul(p, values); // [B, heads * Nt, C]
      const v = tf.reshape(
        tf.matMul(tf.reshape(pooled, [-1, cIn]) as tf.Tensor2D, this.vProj.weight.read() as tf.Tensor2D),
        [b, heads, nt, c],
      );
      const out = tf.add(tf.sum(tf.mul(v, mask), 1), this.vProj.bias!.read());
      return this.outProj.forward(out) as tf.Tensor3D;
    });
  }

  /**
   * Attention of image tokens over a few tokens, with the output projection: `image` is either
   * { keys: [B or 1, Ni, C] } (image + encoding, to be projected by q_proj) or { q: [B or 1, Ni,
   * c] } (that projection, computed once per image); k [B, Nt, C] (tokens + encoding), v [B, Nt,
   * C] (tokens). Reassociated so no image token is projected: per head the scores are
   * keys (Wq_h k_h^T) + bq_h k_h^T and the output sum_h p_h (v_h Wo_h) + bo. Returns [B, Ni, C].
   */
  imageToToken(image: { keys: tf.Tensor3D } | { q: tf.Tensor3D }, k: tf.Tensor3D, v: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, nt] = k.shape;
      const heads = this.numHeads;
      const c = this.qProj.outDim;
      const mask = headMask(heads, c);
      const blockDiag = (x: tf.Tensor) =>
        tf.reshape(tf.mul(tf.expandDims(x, 1), mask), [b * heads * nt, c]) as tf.Tensor2D; // [B * heads * Nt, c]
      const kb = blockDiag(tf.mul(this.kProj.forward(k), 1 / Math.sqrt(c / heads)));
      let scores: tf.Tensor3D; // [B or 1... , Ni, heads * Nt]
      if ('keys' in image) {
        const cIn = image.keys.shape[2];
        const wq = tf.reshape(tf.matMul(kb, tf.transpose(this.qProj.weight.read()) as tf.Tensor2D), [
          b,
          heads * nt,
          cIn,
        ]);
        const bias = tf.reshape(tf.matMul(kb, tf.reshape(this.qProj.bias!.read(), [c, 1])), [b, 1, heads * nt]);
        scores = tf.add(batchMatMul(image.keys, tf.transpose(wq, [0, 2, 1]) as tf.Tensor3D), bias) as tf.Tensor3D;
      } else {
        scores = batchMatMul(image.q, tf.transpose(tf.reshape(kb, [b, heads * nt, c]), [0, 2, 1]) as tf.Tensor3D);
      }
      const [, ni] = scores.shape;
      const p = tf.reshape(softmax(tf.reshape(scores, [b, ni, heads, nt])), [b, ni, heads * nt]) as tf.Tensor3D;
      const vo = tf.reshape(tf.matMul(blockDiag(this.vProj.forward(v)), this.outProj.weight.read() as tf.Tensor2D), [
        b,
        heads * nt,
        -1,
      ]) as tf.Tensor3D; // [B, heads * Nt, C]: each head's values through its rows of out_proj
      return tf.add(batchMatMul(p, vo), this.outProj.bias!.read()) as tf.Tensor3D;
    });
  }

  /**
   * Whether tokenToImage / imageToToken are cheaper than projecting the image tokens for `nt`
   * tokens: they cost heads x Nt products per image token where projecting costs c.
   */
  reassociates(nt: number): boolean {
    return this.numHeads * nt < this.qProj.outDim;
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
