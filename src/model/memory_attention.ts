/**
 * Memory attention: the current frame's features attend to themselves and to the memory bank
 * (spatial memories of earlier frames plus object-pointer tokens) through 4 pre-norm layers of
 * RoPE self-attention, RoPE cross-attention and a ReLU MLP, then a final LayerNorm.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Layer, shapeList, tensorList, type Shape } from '../layers/base';
import { LayerNorm, Linear } from '../layers/common';
import { packFactoredKeys, RoPEAttention, type FactoredKeys, type GridRows } from '../layers/rope_attention';
import type { Sam2Config } from '../config';

const P = 'memory_attention';

/** A stored memory as the memory attention reads it. */
export interface SpatialMemory {
  /** [n, memDim] memory features of one frame (the values). */
  features: tf.Tensor2D;
  /** [n, memDim] features plus their sine position encoding: the keys' input but for tpos. */
  keyInput: tf.Tensor2D;
  /**
   * Per-layer key part from MemoryAttention.spatialKeys, cached while the memory lives; needed
   * only where usesFactoredKeys is false (computed per call when missing).
   */
  keysT?: tf.Tensor2D[];
  /** [1, memDim] temporal encoding of the memory's slot relative to the current frame. */
  tpos: tf.Tensor2D;
}

/** Cross-attention keys of every layer: keysT [d, M] each, or the factored form (one packing for all layers). */
export type BankKeys = tf.Tensor2D[] | FactoredKeys[];

/** Object pointers split into memDim-wide tokens, with their (temporal) position encodings. */
export interface PointerTokens {
  tokens: tf.Tensor2D;
  pos: tf.Tensor2D;
}

export class MemoryAttentionLayer extends Sam2Layer {
  static className = 'Sam2MemoryAttentionLayer';
  readonly selfAttn: RoPEAttention;
  readonly crossAttnImage: RoPEAttention;
  readonly linear1: Linear;
  readonly linear2: Linear;
  readonly norms: LayerNorm[];

  constructor(key: string, d: number, memDim: number) {
    super();
    this.remember<typeof MemoryAttentionLayer>(key, d, memDim);
    this.selfAttn = this.child(new RoPEAttention(`${key}.self_attn`, d));
    this.crossAttnImage = this.child(new RoPEAttention(`${key}.cross_attn_image`, d, memDim));
    this.linear1 = this.child(new Linear(`${key}.linear1`, d, 2048));
    this.linear2 = this.child(new Linear(`${key}.linear2`, 2048, d));
    this.norms = [1, 2, 3].map((i) => this.child(new LayerNorm(`${key}.norm${i}`, d)));
  }

  /**
   * tgt [N, d]; memoryKeys: keysT [d, M] (see MemoryAttention.bankKeys) or FactoredKeys; memory
   * [M, memDim] (the values). With `rows`, returns only those rows of the output (every row needs
   * all of tgt for self-attention, and nothing else).
   */
  forward(
    tgt: tf.Tensor2D,
    memoryKeys: tf.Tensor2D | FactoredKeys,
    memory: tf.Tensor2D,
    rows?: GridRows,
    selfOut?: tf.Tensor2D,
  ): tf.Tensor2D {
    return tf.tidy(() => {
      const [n2, n3] = this.norms.slice(1);
      let x = selfOut ?? this.selfBlock(tgt, rows);
      x = tf.add(x, this.crossAttnImage.attend(n2.forward(x) as tf.Tensor2D, memoryKeys, memory, rows)) as tf.Tensor2D;
      const h = this.linear2.forward(this.linear1.forward(n3.forward(x), 'relu'));
      return tf.add(x, h) as tf.Tensor2D;
    });
  }

  /**
   * The self-attention sub-block (tgt + self_attn(norm1(tgt))): `forward`'s first step. It reads
   * only tgt, so for layer 0 it is the same for every object of a frame (forwardBank's `first`).
   */
  selfBlock(tgt: tf.Tensor2D, rows?: GridRows): tf.Tensor2D {
    return tf.tidy(() => {
      const own = rows ? (tf.slice(tgt, [rows.start, 0], [rows.count, -1]) as tf.Tensor2D) : tgt;
      return tf.add(own, this.selfAttn.selfAttend(this.norms[0].forward(tgt) as tf.Tensor2D, rows)) as tf.Tensor2D;
    });
  }

  /** inputs [tgt, memoryKeysT, memory] as in forward (every row). */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [tgt, memoryKeysT, memory] = tensorList(inputs) as tf.Tensor2D[];
    return this.forward(tgt, memoryKeysT, memory);
  }

  /** tgt [N, d] -> [N, d]. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return this.linear2.computeOutputShape(shapeList(inputShape)[0]);
  }
}
tf.serialization.registerClass(MemoryAttentionLayer);

export class MemoryAttention extends Sam2Layer {
  static className = 'Sam2MemoryAttention';
  readonly layers: MemoryAttentionLayer[];
  readonly norm: LayerNorm;

  constructor(readonly config: Sam2Config) {
    super();
    this.remember<typeof MemoryAttention>(config);
    const d = config.neck.dModel;
    this.layers = Array.from({ length: config.memoryAttentionLayers }, (_, i) =>
      this.child(new MemoryAttentionLayer(`${P}.layers.${i}`, d, config.memoryDim)),
    );
    this.norm = this.child(new LayerNorm(`${P}.norm`, d));
  }

  /**
   * The cacheable part of one spatial memory's cross-attention keys, per layer: keyInput (its
   * features plus their sine position encoding) projected and rotated ([d, n] each). The temporal
   * encoding of the memory's slot, which changes from frame to frame, is added by bankKeys.
   */
  spatialKeys(keyInput: tf.Tensor2D): tf.Tensor2D[] {
    return tf.tidy(() => this.layers.map((l) => l.crossAttnImage.gridKeysT(keyInput)));
  }

  /**
   * Whether forwardBank scores `count` spatial memories of n tokens in the factored form
   * (FactoredKeys: the wasm SIMD kernels, 64-channel memories on a grid of a side that is a
   * multiple of 4). Then it needs no SpatialMemory.keysT. The factored form's per-query work
   * (~1.1 GMAC per 1024 queries) is shared by the memories, and they go in groups of four: from 3
   * memories on it beats the direct products (1024 queries at 1024 px: ~70 vs ~95 ms with 3
   * memories, ~70 vs ~125 ms with 4, on 2 threads).
   */
  usesFactoredKeys(n: number, count: number): boolean {
    const side = Math.round(Math.sqrt(n));
    return count >= 3 && side * side === n && this.layers[0].crossAttnImage.factoredScoresAvailable(side);
  }

  /** Cross-attention keys [d, M] of layer `layer` for a memory bank, in the order of prepareBank's values. */
  bankKeys(layer: number, spatial: SpatialMemory[], pointers?: PointerTokens): tf.Tensor2D {
    return tf.tidy(() => {
      const attn = this.layers[layer].crossAttnImage;
      const parts = spatial.map(
        (m) =>
          tf.add(
            m.keysT?.[layer] ?? attn.gridKeysT(m.keyInput),
            attn.gridKeyOffsetT(m.tpos, m.features.shape[0]),
          ) as tf.Tensor2D,
      );
      if (pointers) parts.push(attn.plainKeysT(tf.add(pointers.tokens, pointers.pos) as tf.Tensor2D));
      return (parts.length === 1 ? parts[0] : tf.concat(parts, 1)) as tf.Tensor2D;
    });
  }

  /**
   * curr [N, d]: features of the current frame (N = h*w tokens, row-major) and currPos their
   * sine encoding, conditioned on spatial memories of the same grid (RoPE-rotated) and
   * object-pointer tokens (not rotated). Returns [N, d].
   */
  forwardBank(
    curr: tf.Tensor2D,
    currPos: tf.Tensor2D,
    spatial: SpatialMemory[],
    pointers?: PointerTokens,
    first?: tf.Tensor2D,
  ): tf.Tensor2D {
    return tf.tidy(() => {
      const x = tf.add(curr, tf.mul(currPos, 0.1)) as tf.Tensor2D;
      const keys = this.layerKeys(spatial, pointers);
      const values = this.bankValues(spatial, pointers);
      return this.norm.forward(
        this.layers.reduce((h, l, i) => l.forward(h, keys[i], values, undefined, i === 0 ? first : undefined), x),
      ) as tf.Tensor2D;
    });
  }

  /**
   * Layer 0's self-attention sub-block on a frame's features: it does not depend on the object
   * (its memories enter at the cross-attention), so objects tracked on the same frame share it
   * (forwardBank's `first`). ~9 GMAC of a 4096-token frame, ~1/16 of memory attention with 7
   * memories.
   */
  firstSelfBlock(curr: tf.Tensor2D, currPos: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.layers[0].selfBlock(tf.add(curr, tf.mul(currPos, 0.1)) as tf.Tensor2D));
  }

  /** What the layers read: the input tokens, every layer's keys [d, M] and the values [M, memDim]. */
  prepareBank(curr: tf.Tensor2D, currPos: tf.Tensor2D, spatial: SpatialMemory[], pointers?: PointerTokens) {
    return tf.tidy(() => ({
      x: tf.add(curr, tf.mul(currPos, 0.1)) as tf.Tensor2D,
      keysT: this.layers.map((_, i) => this.bankKeys(i, spatial, pointers)),
      values: this.bankValues(spatial, pointers),
    }));
  }

  /** The values [M, memDim]: every memory's features, then the pointer tokens. */
  private bankValues(spatial: SpatialMemory[], pointers?: PointerTokens): tf.Tensor2D {
    return tf.concat([...spatial.map((m) => m.features), ...(pointers ? [pointers.tokens] : [])]) as tf.Tensor2D;
  }

  /** Every layer's keys for forwardBank: factored where usesFactoredKeys, else keysT [d, M]. */
  private layerKeys(spatial: SpatialMemory[], pointers?: PointerTokens): BankKeys {
    const n = spatial[0]?.features.shape[0] ?? 0;
    if (!this.usesFactoredKeys(n, spatial.length))
      return this.layers.map((_, i) => this.bankKeys(i, spatial, pointers));
    return tf.tidy(() => {
      const side = Math.round(Math.sqrt(n));
      // the temporal encoding is one vector per memory: added to its key input, it leaves the
      // same key (the projection is affine) as bankKeys' offset does
      const inputs = tf.stack(spatial.map((m) => tf.add(m.keyInput, m.tpos))) as tf.Tensor3D;
      const u = packFactoredKeys(inputs, side);
      const ptrInput = pointers ? (tf.add(pointers.tokens, pointers.pos) as tf.Tensor2D) : undefined;
      return this.layers.map((l) => ({
        u,
        count: spatial.length,
        side,
        pointersT: ptrInput && l.crossAttnImage.plainKeysT(ptrInput),
      }));
    });
  }

  /**
   * The reference's call: memory [M, memDim] and memoryPos (temporal encodings included) with
   * the numObjPtrTokens object-pointer tokens last, every spatial memory on curr's grid.
   */
  forward(
    curr: tf.Tensor2D,
    currPos: tf.Tensor2D,
    memory: tf.Tensor2D,
    memoryPos: tf.Tensor2D,
    numObjPtrTokens: number,
  ): tf.Tensor2D {
    return tf.tidy(() => {
      const [n, memDim] = [curr.shape[0], memory.shape[1]];
      const numSpatial = (memory.shape[0] - numObjPtrTokens) / n;
      const zero = tf.zeros([1, memDim]) as tf.Tensor2D;
      const spatial = Array.from({ length: numSpatial }, (_, i) => {
        const features = tf.slice(memory, [i * n, 0], [n, -1]) as tf.Tensor2D;
        const keyInput = tf.add(features, tf.slice(memoryPos, [i * n, 0], [n, -1])) as tf.Tensor2D;
        return { features, keyInput, tpos: zero };
      });
      const start = numSpatial * n;
      const pointers = numObjPtrTokens
        ? {
            tokens: tf.slice(memory, [start, 0], [-1, -1]) as tf.Tensor2D,
            pos: tf.slice(memoryPos, [start, 0], [-1, -1]) as tf.Tensor2D,
          }
        : undefined;
      return this.forwardBank(curr, currPos, spatial, pointers);
    });
  }

  /** inputs [curr, currPos, memory, memoryPos] and kwargs.numObjPtrTokens (default 0), as in forward. */
  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { numObjPtrTokens?: number } = {}): tf.Tensor {
    const [curr, currPos, memory, memoryPos] = tensorList(inputs) as tf.Tensor2D[];
    return this.forward(curr, currPos, memory, memoryPos, kwargs.numObjPtrTokens ?? 0);
  }

  /** curr [N, d] -> [N, d]. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return this.norm.computeOutputShape(shapeList(inputShape)[0]);
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
    if ((b & 0x7f800000) === 0x7f800000)
      ob[i] = b & 0xffff0000; // inf/nan kept
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
