/**
 * Memory attention: the current frame's features attend to themselves and to the memory bank
 * (spatial memories of earlier frames plus object-pointer tokens) through 4 pre-norm layers of
 * RoPE self-attention, RoPE cross-attention and a ReLU MLP, then a final LayerNorm.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Layer } from '../layers/base';
import { LayerNorm, Linear } from '../layers/common';
import { RoPEAttention } from '../layers/rope_attention';
import type { Sam2Config } from './config';

const P = 'memory_attention';

export class MemoryAttentionLayer extends Sam2Layer {
  static className = 'Sam2MemoryAttentionLayer';
  readonly selfAttn: RoPEAttention;
  readonly crossAttnImage: RoPEAttention;
  readonly linear1: Linear;
  readonly linear2: Linear;
  readonly norms: LayerNorm[];

  constructor(key: string, d: number, memDim: number) {
    super();
    this.selfAttn = this.child(new RoPEAttention(`${key}.self_attn`, d));
    this.crossAttnImage = this.child(new RoPEAttention(`${key}.cross_attn_image`, d, memDim));
    this.linear1 = this.child(new Linear(`${key}.linear1`, d, 2048));
    this.linear2 = this.child(new Linear(`${key}.linear2`, 2048, d));
    this.norms = [1, 2, 3].map((i) => this.child(new LayerNorm(`${key}.norm${i}`, d)));
  }

  /**
   * tgt [N, d]; memoryKeysT: the cross-attention keys prepared by prepareKeys (memory + its
   * position encoding, projected and rotated); memory [M, memDim] for the values.
   */
  forward(tgt: tf.Tensor2D, memoryKeysT: tf.Tensor2D, memory: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const [n1, n2, n3] = this.norms;
      const t1 = n1.forward(tgt) as tf.Tensor2D;
      let x = tf.add(tgt, this.selfAttn.forward(t1, t1, t1)) as tf.Tensor2D;
      x = tf.add(x, this.crossAttnImage.attend(n2.forward(x) as tf.Tensor2D, memoryKeysT, memory)) as tf.Tensor2D;
      const h = this.linear2.forward(this.linear1.forward(n3.forward(x), 'relu'));
      return tf.add(x, h) as tf.Tensor2D;
    });
  }
}
tf.serialization.registerClass(MemoryAttentionLayer);

export class MemoryAttention extends Sam2Layer {
  static className = 'Sam2MemoryAttention';
  readonly layers: MemoryAttentionLayer[];
  readonly norm: LayerNorm;

  constructor(readonly config: Sam2Config) {
    super();
    const d = config.neck.dModel;
    this.layers = Array.from({ length: config.memoryAttentionLayers }, (_, i) =>
      this.child(new MemoryAttentionLayer(`${P}.layers.${i}`, d, config.memoryDim)),
    );
    this.norm = this.child(new LayerNorm(`${P}.norm`, d));
  }

  /**
   * The cross-attention keys of every layer for a memory bank: [memory + memoryPos] projected
   * and rotated per layer. Depends only on the memory, so it can be reused across frames.
   */
  prepareMemoryKeys(memory: tf.Tensor2D, memoryPos: tf.Tensor2D, nQuery: number, numObjPtrTokens: number): tf.Tensor2D[] {
    return tf.tidy(() => {
      const k = tf.add(memory, memoryPos) as tf.Tensor2D;
      return this.layers.map((l) => l.crossAttnImage.prepareKeys(k, nQuery, numObjPtrTokens));
    });
  }

  /**
   * curr [N, 256] features of the current frame (N = h*w tokens, row-major), currPos its sine
   * encoding; memory [M, 64] and memoryPos [M, 64] with the object-pointer tokens last.
   * Returns the memory-conditioned features [N, 256].
   */
  forward(curr: tf.Tensor2D, currPos: tf.Tensor2D, memory: tf.Tensor2D, memoryPos: tf.Tensor2D, numObjPtrTokens: number): tf.Tensor2D {
    return tf.tidy(() => {
      const keys = this.prepareMemoryKeys(memory, memoryPos, curr.shape[0], numObjPtrTokens);
      return this.forwardWithKeys(curr, currPos, keys, memory);
    });
  }

  /** forward() with the keys from prepareMemoryKeys. */
  forwardWithKeys(curr: tf.Tensor2D, currPos: tf.Tensor2D, memoryKeysT: tf.Tensor2D[], memory: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      let x = tf.add(curr, tf.mul(currPos, 0.1)) as tf.Tensor2D;
      this.layers.forEach((l, i) => (x = l.forward(x, memoryKeysT[i], memory)));
      return this.norm.forward(x) as tf.Tensor2D;
    });
  }
}
tf.serialization.registerClass(MemoryAttention);

/** Rounds float32 values to bfloat16 precision (round to nearest even), as stored memories are. */
export function roundToBfloat16(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const ob = new Uint32Array(out.buffer);
  for (let i = 0; i < x.length; i++) {
    const b = bits[i];
    if ((b & 0x7f800000) === 0x7f800000) ob[i] = b & 0xffff0000; // inf/nan kept
    else ob[i] = ((b + 0x7fff + ((b >>> 16) & 1)) & 0xffff0000) >>> 0;
  }
  return out;
}

/** The reference's 1-D sine encoding of (normalized) temporal offsets: [n] -> [n, dim]. */
export function sine1d(positions: number[], dim: number, temperature = 10000): Float32Array {
  const half = dim / 2;
  const out = new Float32Array(positions.length * dim);
  positions.forEach((p, r) => {
    for (let i = 0; i < half; i++) {
      const dimT = Math.fround(Math.pow(temperature, Math.fround((2 * Math.floor(i / 2)) / half)));
      const v = Math.fround(Math.fround(p) / dimT);
      out[r * dim + i] = Math.sin(v);
      out[r * dim + half + i] = Math.cos(v);
    }
  });
  return out;
}
