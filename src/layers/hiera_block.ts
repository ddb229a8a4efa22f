/**
 * Hiera's MultiScaleBlock: pre-norm (optionally windowed) multi-head attention with query
 * pooling at stage transitions, then a GELU MLP. NHWC throughout.
 *
 * Speed on wasm (see shared/PERF-NOTES.md): only rank-2 matMuls without transpose flags hit
 * the fast XNNPACK path, so the fused qkv projection is split at load into one projection per
 * head and per q/k/v (no slicing of inner axes at run time), the softmax scale is folded into
 * the query weights, keys are transposed explicitly, and the output projection is applied per
 * head and summed instead of concatenating heads.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Layer, shapeList, type Shape } from './base';
import { simdKernelsActive } from '../wasm_kernels';
import { LayerNorm, Linear, Mlp, softmax } from './common';

export interface MultiScaleBlockOptions {
  dim: number;
  dimOut: number;
  numHeads: number;
  mlpRatio: number;
  /** 0 for global attention. */
  windowSize: number;
  /** Pool queries (and the shortcut) 2x2 at this block: the first block of a new stage. */
  qPool: boolean;
}

interface HeadWeights {
  wq: tf.Tensor2D;
  bq: tf.Tensor1D;
  wk: tf.Tensor2D;
  bk: tf.Tensor1D;
  wv: tf.Tensor2D;
  bv: tf.Tensor1D;
  /** Rows of the output projection that this head's output multiplies. */
  wProj: tf.Tensor2D;
}

/** Splits [B, H, W, C] into [B * nWindows, ws, ws, C], zero-padding H and W to multiples of ws. */
export function windowPartition(x: tf.Tensor4D, ws: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    const ph = (ws - (h % ws)) % ws;
    const pw = (ws - (w % ws)) % ws;
    const padded =
      ph || pw
        ? tf.pad(x, [
            [0, 0],
            [0, ph],
            [0, pw],
            [0, 0],
          ])
        : x;
    const hp = h + ph;
    const wp = w + pw;
    // 4-D transposes only: fold (ws, C) together so the window shuffle is a single swap
    const r = tf.reshape(padded, [b * (hp / ws), ws, wp / ws, ws * c]);
    const t = tf.transpose(r, [0, 2, 1, 3]);
    return tf.reshape(t, [(b * hp * wp) / (ws * ws), ws, ws, c]) as tf.Tensor4D;
  });
}

/** Inverse of windowPartition for a padded size (hp, wp), cropped back to (h, w). */
export function windowUnpartition(
  x: tf.Tensor4D,
  ws: number,
  b: number,
  hp: number,
  wp: number,
  h: number,
  w: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const c = x.shape[3];
    const r = tf.reshape(x, [b * (hp / ws), wp / ws, ws, ws * c]);
    const t = tf.transpose(r, [0, 2, 1, 3]);
    const full = tf.reshape(t, [b, hp, wp, c]) as tf.Tensor4D;
    return hp !== h || wp !== w ? tf.slice(full, [0, 0, 0, 0], [b, h, w, c]) : full;
  });
}

export class MultiScaleBlock extends Sam2Layer {
  /**
   * Windows of at least this many tokens run one rank-2 attention product per window on wasm;
   * smaller ones (many tiny windows) pay more in per-op overhead than the batched matMul costs.
   * Tests set it to Infinity to compare with the batched path.
   */
  static perWindowMinTokens = 49;

  static className = 'Sam2MultiScaleBlock';
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  /** Channel projection of the shortcut when the width changes. */
  readonly proj?: Linear;
  private readonly qkvWeight: tf.LayerVariable;
  private readonly qkvBias: tf.LayerVariable;
  private readonly projWeight: tf.LayerVariable;
  private readonly projBias: tf.LayerVariable;
  private heads: HeadWeights[] = [];

  constructor(
    readonly key: string,
    readonly opts: MultiScaleBlockOptions,
  ) {
    super();
    this.remember<typeof MultiScaleBlock>(key, opts);
    const { dim, dimOut, mlpRatio } = opts;
    this.norm1 = this.child(new LayerNorm(`${key}.norm1`, dim, 1e-6));
    this.qkvWeight = this.param(`${key}.attn.qkv.weight`, [dim, 3 * dimOut]);
    this.qkvBias = this.param(`${key}.attn.qkv.bias`, [3 * dimOut]);
    this.projWeight = this.param(`${key}.attn.proj.weight`, [dimOut, dimOut]);
    this.projBias = this.param(`${key}.attn.proj.bias`, [dimOut]);
    this.norm2 = this.child(new LayerNorm(`${key}.norm2`, dimOut, 1e-6));
    this.mlp = this.child(new Mlp(`${key}.mlp`, dimOut, Math.floor(dimOut * mlpRatio), dimOut, 2, 'gelu'));
    if (dim !== dimOut) this.proj = this.child(new Linear(`${key}.proj`, dim, dimOut));
  }

  protected override onWeightsLoaded(): void {
    this.disposeDerived();
    const { dimOut, numHeads } = this.opts;
    const d = dimOut / numHeads;
    const scale = 1 / Math.sqrt(d);
    const w = this.qkvWeight.read() as tf.Tensor2D; // [dim, 3 * dimOut]: columns q | k | v, heads inside each
    const b = this.qkvBias.read() as tf.Tensor1D;
    const cols = (part: number, h: number) => part * dimOut + h * d;
    this.heads = [];
    for (let h = 0; h < numHeads; h++) {
      this.heads.push(
        tf.tidy(() => ({
          wq: tf.keep(tf.mul(tf.slice(w, [0, cols(0, h)], [-1, d]), scale) as tf.Tensor2D),
          bq: tf.keep(tf.mul(tf.slice(b, [cols(0, h)], [d]), scale) as tf.Tensor1D),
          wk: tf.keep(tf.slice(w, [0, cols(1, h)], [-1, d])),
          bk: tf.keep(tf.slice(b, [cols(1, h)], [d])),
          wv: tf.keep(tf.slice(w, [0, cols(2, h)], [-1, d])),
          bv: tf.keep(tf.slice(b, [cols(2, h)], [d])),
          wProj: tf.keep(tf.slice(this.projWeight.read() as tf.Tensor2D, [h * d, 0], [d, -1])),
        })),
      );
    }
  }

  protected override disposeDerived(): void {
    for (const h of this.heads) for (const t of Object.values(h)) t.dispose();
    this.heads = [];
  }

  /**
   * Attention over groups of tokens x [G, h, w, C] (G windows, or the batch for global
   * attention). Returns [G, h', w', dimOut] after the output projection, with h' = h/2 when
   * queries are pooled.
   */
  private attention(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [g, h, w, c] = x.shape;
      const n = h * w;
      const tokens = tf.reshape(x, [g * n, c]) as tf.Tensor2D;
      const pool = this.opts.qPool;
      const hq = pool ? Math.floor(h / 2) : h;
      const wq = pool ? Math.floor(w / 2) : w;
      const nq = hq * wq;
      const d = this.opts.dimOut / this.opts.numHeads;
      let out: tf.Tensor2D | undefined;
      for (const hw of this.heads) {
        // one tidy per head: global attention holds [n, n] maps per head (64 MB each at 1024 px),
        // and the wasm heap never shrinks
        const contribution = tf.tidy(() => {
          let q = tf.fused.matMul({ a: tokens, b: hw.wq, bias: hw.bq }) as tf.Tensor2D;
          if (pool)
            q = tf.reshape(tf.maxPool(tf.reshape(q, [g, h, w, d]) as tf.Tensor4D, 2, 2, 'valid'), [
              g * nq,
              d,
            ]) as tf.Tensor2D;
          const k = tf.fused.matMul({ a: tokens, b: hw.wk, bias: hw.bk });
          const v = tf.fused.matMul({ a: tokens, b: hw.wv, bias: hw.bv });
          let o: tf.Tensor2D;
          if (g === 1) {
            const p = softmax(tf.matMul(q, tf.transpose(k)));
            o = tf.matMul(p, v) as tf.Tensor2D;
          } else if (n >= MultiScaleBlock.perWindowMinTokens && tf.getBackend() === 'wasm' && !simdKernelsActive()) {
            // tf.js's wasm kernel runs batched matMuls on a scalar loop (~3.5 GFLOP/s); one
            // rank-2 product per window goes through XNNPACK on both cores (~80 GFLOP/s). With
            // our SIMD kernel (src/wasm_kernels.ts) the batched products below are faster.
            const kT = tf.transpose(tf.reshape(k, [g, n, d]), [0, 2, 1]) as tf.Tensor3D;
            const outs: tf.Tensor2D[] = [];
            for (let i = 0; i < g; i++) {
              const qi = tf.slice(q, [i * nq, 0], [nq, d]);
              const kTi = tf.reshape(tf.slice(kT, [i, 0, 0], [1, d, n]), [d, n]) as tf.Tensor2D;
              const vi = tf.slice(v, [i * n, 0], [n, d]);
              outs.push(tf.matMul(softmax(tf.matMul(qi, kTi)), vi));
            }
            o = tf.concat(outs, 0);
          } else {
            const kT = tf.transpose(tf.reshape(k, [g, n, d]), [0, 2, 1]) as tf.Tensor3D;
            const p = softmax(tf.matMul(tf.reshape(q, [g, nq, d]) as tf.Tensor3D, kT));
            o = tf.reshape(tf.matMul(p, tf.reshape(v, [g, n, d]) as tf.Tensor3D), [g * nq, d]) as tf.Tensor2D;
          }
          return tf.matMul(o, hw.wProj) as tf.Tensor2D;
        });
        if (out) {
          const sum = tf.add(out, contribution) as tf.Tensor2D;
          tf.dispose([out, contribution]);
          out = sum;
        } else out = contribution;
      }
      const projected = tf.add(out as tf.Tensor2D, this.projBias.read());
      return tf.reshape(projected, [g, hq, wq, this.opts.dimOut]);
    });
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const b = x.shape[0];
      const xn = this.norm1.forward(x) as tf.Tensor4D;
      let shortcut: tf.Tensor4D = x;
      if (this.proj) {
        const projected = this.proj.forward(xn) as tf.Tensor4D;
        shortcut = this.opts.qPool ? tf.maxPool(projected, 2, 2, 'valid') : projected;
      }
      const ws = this.opts.windowSize;
      let attn: tf.Tensor4D;
      if (ws > 0) {
        const windows = windowPartition(xn, ws);
        const out = this.attention(windows);
        // pooled queries shrink each window; unpartition at the output resolution
        const [, ho, wo] = shortcut.shape;
        const wsOut = this.opts.qPool ? ws / 2 : ws;
        const hp = Math.ceil(ho / wsOut) * wsOut;
        const wp = Math.ceil(wo / wsOut) * wsOut;
        attn = windowUnpartition(out, wsOut, b, hp, wp, ho, wo);
      } else if (b === 1) {
        attn = this.attention(xn);
      } else {
        attn = tf.concat(
          tf.split(xn, b, 0).map((xi) => this.attention(xi as tf.Tensor4D)),
          0,
        );
      }
      const y = tf.add(shortcut, attn);
      return tf.add(y, this.mlp.forward(this.norm2.forward(y))) as tf.Tensor4D;
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D);
  }

  /** [B, H, W, dim] -> [B, H', W', dimOut]; pooling (2x2, valid) gives H' = floor(H / 2). */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const [b, h, w] = shapeList(inputShape)[0];
    const pool = (n: number | null) => (n !== null && this.opts.qPool ? Math.floor(n / 2) : n);
    return [b, pool(h), pool(w), this.opts.dimOut];
  }
}
tf.serialization.registerClass(MultiScaleBlock);
