/**
 * The SAM 1 ViT block: pre-norm multi-head attention (within 14x14 windows, or global) with
 * decomposed relative position embeddings added to the attention logits, then a GELU MLP.
 * NHWC throughout.
 *
 * Speed on wasm (shared/PERF-NOTES.md): the fused qkv projection runs as one rank-2
 * projection per head and per q/k/v (no slicing of activations), the softmax scale is folded
 * into the query weights (and the relative position tables divided by it, so the logits stay
 * the same), keys are transposed explicitly, and the output projection is applied per head and
 * summed. The per-head weights are sliced from the fused ones at each call instead of being
 * kept: slicing costs ~0.1% of the block's matMuls, while kept copies would add 1/3 to the
 * weights' memory and, worse, XNNPACK keeps a packed copy of every matMul weight it has seen
 * (freed with the tensor): with kept copies ViT-H ran out of the 4 GB wasm heap at block 9 even
 * at 128 px; with per-call slices it finished at 128 px but filled the heap (4.0 GB) with the MLP
 * weights' packed copies, so big encoders also run their MLPs uncached (`uncachedWeights`).
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Layer, shapeList, type Shape } from './base';
import { LayerNorm, Linear, gelu, softmax } from './common';
import { windowPartition, windowUnpartition } from './hiera_block';
import { simdKernelsActive } from '../wasm_kernels';

export interface VitBlockOptions {
  dim: number;
  numHeads: number;
  mlpRatio: number;
  /** 0 for global attention. */
  windowSize: number;
  /** Side of the token grid the attention sees: the window size, or the whole grid when global. */
  inputSize: number;
  /**
   * Run the MLP so that XNNPACK keeps no packed copy of its weights, in token chunks (see
   * `uncachedMlp`): for encoders whose weights would not fit the wasm heap twice (ViT-H).
   */
  uncachedWeights?: boolean;
}

interface HeadWeights {
  wq: tf.Tensor2D;
  bq: tf.Tensor1D;
  wk: tf.Tensor2D;
  bk: tf.Tensor1D;
  wv: tf.Tensor2D;
  bv: tf.Tensor1D;
  wProj: tf.Tensor2D;
}

/**
 * The reference's get_rel_pos for equal query and key sizes: the table of `size` x `size`
 * relative embeddings [size, size, C] (entry [q, k] is the embedding of offset q - k), after a
 * linear interpolation of `relPos` [L, C] to 2 * size - 1 rows when its length differs.
 */
export function relPosTable(relPos: tf.Tensor2D, size: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [len, c] = relPos.shape;
    const want = 2 * size - 1;
    let table = relPos;
    if (len !== want) {
      // PyTorch's linear interpolation with align_corners=False, as a 1-pixel-wide bilinear resize
      const r = tf.image.resizeBilinear(tf.reshape(relPos, [1, len, 1, c]) as tf.Tensor4D, [want, 1], false, true);
      table = tf.reshape(r, [want, c]) as tf.Tensor2D;
    }
    const idx = new Int32Array(size * size);
    for (let q = 0; q < size; q++) for (let k = 0; k < size; k++) idx[q * size + k] = q - k + size - 1;
    return tf.reshape(tf.gather(table, tf.tensor1d(idx, 'int32')), [size, size, c]) as tf.Tensor3D;
  });
}

/** Tokens per chunk of `uncachedMlp`. */
export const MLP_CHUNK_TOKENS = 1024;

/**
 * `lin2(gelu(lin1(x)))` over x [..., C] without lasting XNNPACK operators, in chunks of
 * MLP_CHUNK_TOKENS tokens. The wasm backend's fused matMul packs the weight matrix into an
 * operator cached under the (weight id, bias id) pair and freed only when either tensor is
 * disposed, so every Linear of a model ends up stored twice in the wasm heap. Short-lived copies
 * of the biases (a few KB) make the operators die with them at the end of the call: each weight
 * is packed once per call, which is within noise for 4096 tokens (a 1280x5120 matMul took
 * 3.0-3.9 s either way). The chunks bound the hidden activations and GELU's temporaries (at
 * 4096 tokens ViT-H's would be ~0.5 GB at once).
 */
export function uncachedMlp(lin1: Linear, lin2: Linear, x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const shape = x.shape;
    const x2 = tf.reshape(x, [-1, lin1.inDim]) as tf.Tensor2D;
    const n = x2.shape[0];
    // the copies are what matter: a Linear without a bias gets a copy of its weight instead
    const args = (l: Linear) => {
      const w = l.weight.read() as tf.Tensor2D;
      return l.bias ? { b: w, bias: tf.clone(l.bias.read()) } : { b: tf.clone(w) };
    };
    const a1 = args(lin1);
    const a2 = args(lin2);
    const parts: tf.Tensor[] = [];
    for (let start = 0; start < n; start += MLP_CHUNK_TOKENS) {
      parts.push(
        tf.tidy(() => {
          const rows = Math.min(MLP_CHUNK_TOKENS, n - start);
          const xi = rows === n ? x2 : tf.slice(x2, [start, 0], [rows, -1]);
          return tf.fused.matMul({ a: gelu(tf.fused.matMul({ a: xi, ...a1 })) as tf.Tensor2D, ...a2 });
        }),
      );
    }
    const y = parts.length === 1 ? parts[0] : tf.concat(parts, 0);
    return tf.reshape(y, [...shape.slice(0, -1), lin2.outDim]);
  });
}

export class VitBlock extends Sam2Layer {
  static className = 'Sam2VitBlock';
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly lin1: Linear;
  readonly lin2: Linear;
  private readonly qkvWeight: tf.LayerVariable;
  private readonly qkvBias: tf.LayerVariable;
  private readonly projWeight: tf.LayerVariable;
  private readonly projBias: tf.LayerVariable;
  private readonly relPosH: tf.LayerVariable;
  private readonly relPosW: tf.LayerVariable;
  /** Relative position tables per query row / column, transposed for matMul: [h, d, kh], [w, d, kw]. */
  private rel?: { hT: tf.Tensor3D; wT: tf.Tensor3D };

  /**
   * `relPosLength` is the table length stored in the checkpoint (2 * 14 - 1 for windowed
   * blocks, 2 * 64 - 1 for global ones at 1024 px); it is interpolated when inputSize differs.
   */
  constructor(
    readonly key: string,
    readonly opts: VitBlockOptions,
    relPosLength: number,
  ) {
    super();
    this.remember<typeof VitBlock>(key, opts, relPosLength);
    const { dim, numHeads, mlpRatio } = opts;
    const d = dim / numHeads;
    this.norm1 = this.child(new LayerNorm(`${key}.norm1`, dim, 1e-6));
    this.relPosH = this.param(`${key}.attn.rel_pos_h`, [relPosLength, d]);
    this.relPosW = this.param(`${key}.attn.rel_pos_w`, [relPosLength, d]);
    this.qkvWeight = this.param(`${key}.attn.qkv.weight`, [dim, 3 * dim]);
    this.qkvBias = this.param(`${key}.attn.qkv.bias`, [3 * dim]);
    this.projWeight = this.param(`${key}.attn.proj.weight`, [dim, dim]);
    this.projBias = this.param(`${key}.attn.proj.bias`, [dim]);
    this.norm2 = this.child(new LayerNorm(`${key}.norm2`, dim, 1e-6));
    this.lin1 = this.child(new Linear(`${key}.mlp.lin1`, dim, Math.floor(dim * mlpRatio)));
    this.lin2 = this.child(new Linear(`${key}.mlp.lin2`, Math.floor(dim * mlpRatio), dim));
  }

  protected override onWeightsLoaded(): void {
    this.disposeDerived();
    const { dim, numHeads, inputSize } = this.opts;
    const scale = 1 / Math.sqrt(dim / numHeads);
    // the reference adds q . R with the unscaled q; our q is pre-scaled, so R is divided by the scale
    const relT = (v: tf.LayerVariable) =>
      tf.keep(tf.transpose(tf.div(relPosTable(v.read() as tf.Tensor2D, inputSize), scale), [0, 2, 1]) as tf.Tensor3D);
    this.rel = tf.tidy(() => ({ hT: relT(this.relPosH), wT: relT(this.relPosW) }));
  }

  protected override disposeDerived(): void {
    if (this.rel) tf.dispose([this.rel.hT, this.rel.wT]);
    this.rel = undefined;
  }

  /** Head `h`'s q/k/v and output-projection weights, sliced from the fused ones (call inside a tidy). */
  private headWeights(h: number): HeadWeights {
    const { dim, numHeads } = this.opts;
    const d = dim / numHeads;
    const scale = 1 / Math.sqrt(d);
    const w = this.qkvWeight.read() as tf.Tensor2D; // [dim, 3 * dim]: columns q | k | v, heads inside each
    const b = this.qkvBias.read() as tf.Tensor1D;
    const cols = (part: number) => part * dim + h * d;
    return {
      wq: tf.mul(tf.slice(w, [0, cols(0)], [-1, d]), scale) as tf.Tensor2D,
      bq: tf.mul(tf.slice(b, [cols(0)], [d]), scale) as tf.Tensor1D,
      wk: tf.slice(w, [0, cols(1)], [-1, d]),
      bk: tf.slice(b, [cols(1)], [d]),
      wv: tf.slice(w, [0, cols(2)], [-1, d]),
      bv: tf.slice(b, [cols(2)], [d]),
      wProj: tf.slice(this.projWeight.read() as tf.Tensor2D, [h * d, 0], [d, -1]),
    };
  }

  /**
   * Attention over groups of square token grids x [G, s, s, C] (G windows, or one image),
   * with the decomposed relative position terms. Returns [G, s, s, C] after the projection.
   */
  private attention(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [g, s, , c] = x.shape;
      const n = s * s;
      const tokens = tf.reshape(x, [g * n, c]) as tf.Tensor2D;
      const d = this.opts.dim / this.opts.numHeads;
      let out: tf.Tensor2D | undefined;
      const rel = this.rel!;
      for (let head = 0; head < this.opts.numHeads; head++) {
        // one tidy per head: global attention holds several [n, n] maps per head (64 MB each at 1024 px)
        const contribution = tf.tidy(() => {
          const hw = this.headWeights(head);
          const q = tf.fused.matMul({ a: tokens, b: hw.wq, bias: hw.bq });
          const k = tf.fused.matMul({ a: tokens, b: hw.wk, bias: hw.bk });
          const v = tf.fused.matMul({ a: tokens, b: hw.wv, bias: hw.bv });
          // rel_h[g, y, x, ky] = q[g, y, x] . Rh[y, ky]: one matMul per query row y (batched over y)
          const q4 = tf.reshape(q, [g, s, s, d]);
          const byRow = tf.reshape(tf.transpose(q4, [1, 0, 2, 3]), [s, g * s, d]) as tf.Tensor3D;
          const relH = tf.transpose(tf.reshape(tf.matMul(byRow, rel.hT), [s, g, s, s]), [1, 0, 2, 3]);
          const byCol = tf.reshape(tf.transpose(q4, [2, 0, 1, 3]), [s, g * s, d]) as tf.Tensor3D;
          const relW = tf.transpose(tf.reshape(tf.matMul(byCol, rel.wT), [s, g, s, s]), [1, 2, 0, 3]);
          // [g * n, kh, kw] bias, broadcast-added (rank 3) to the logits [g * n, kh * kw]
          const bias = tf.reshape(tf.add(tf.reshape(relH, [g * n, s, 1]), tf.reshape(relW, [g * n, 1, s])), [g, n, n]);
          let o: tf.Tensor2D;
          if (g === 1) {
            const logits = tf.add(tf.matMul(q, tf.transpose(k)), tf.reshape(bias, [n, n]));
            o = tf.matMul(softmax(logits) as tf.Tensor2D, v) as tf.Tensor2D;
          } else if (tf.getBackend() === 'wasm' && !simdKernelsActive()) {
            // one rank-2 product per window: XNNPACK on both cores instead of tf.js's
            // single-threaded batched matMul (as Hiera's MultiScaleBlock does); with our SIMD
            // kernel (src/wasm_kernels.ts) the batched products below are faster
            const kT = tf.transpose(tf.reshape(k, [g, n, d]), [0, 2, 1]) as tf.Tensor3D;
            const parts: tf.Tensor2D[] = [];
            for (let i = 0; i < g; i++) {
              const kTi = tf.reshape(tf.slice(kT, [i, 0, 0], [1, d, n]), [d, n]) as tf.Tensor2D;
              const bi = tf.reshape(tf.slice(bias, [i, 0, 0], [1, n, n]), [n, n]);
              const logits = tf.add(tf.matMul(tf.slice(q, [i * n, 0], [n, d]), kTi), bi);
              parts.push(tf.matMul(softmax(logits) as tf.Tensor2D, tf.slice(v, [i * n, 0], [n, d])));
            }
            o = tf.concat(parts, 0);
          } else {
            const kT = tf.transpose(tf.reshape(k, [g, n, d]), [0, 2, 1]) as tf.Tensor3D;
            const logits = tf.add(tf.matMul(tf.reshape(q, [g, n, d]) as tf.Tensor3D, kT), bias);
            o = tf.reshape(tf.matMul(softmax(logits) as tf.Tensor3D, tf.reshape(v, [g, n, d]) as tf.Tensor3D), [
              g * n,
              d,
            ]) as tf.Tensor2D;
          }
          return tf.matMul(o, hw.wProj) as tf.Tensor2D;
        });
        if (out) {
          const sum = tf.add(out, contribution) as tf.Tensor2D;
          tf.dispose([out, contribution]);
          out = sum;
        } else out = contribution;
      }
      return tf.reshape(tf.add(out as tf.Tensor2D, this.projBias.read()), [g, s, s, c]) as tf.Tensor4D;
    });
  }

  /** x [B, H, W, C] -> [B, H, W, C]. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, h, w] = x.shape;
      const xn = this.norm1.forward(x) as tf.Tensor4D;
      const ws = this.opts.windowSize;
      let attn: tf.Tensor4D;
      if (ws > 0) {
        const hp = Math.ceil(h / ws) * ws;
        const wp = Math.ceil(w / ws) * ws;
        attn = windowUnpartition(this.attention(windowPartition(xn, ws)), ws, b, hp, wp, h, w);
      } else if (b === 1) {
        attn = this.attention(xn);
      } else {
        attn = tf.concat(
          tf.split(xn, b, 0).map((xi) => this.attention(xi as tf.Tensor4D)),
          0,
        );
      }
      const y = tf.add(x, attn);
      const yn = this.norm2.forward(y);
      const mlp = this.opts.uncachedWeights
        ? uncachedMlp(this.lin1, this.lin2, yn)
        : this.lin2.forward(gelu(this.lin1.forward(yn)));
      return tf.add(y, mlp) as tf.Tensor4D;
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D);
  }

  /** [B, H, W, dim] -> the same shape. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return [...shapeList(inputShape)[0]];
  }
}
tf.serialization.registerClass(VitBlock);
