/**
 * Attention with 2-D axial rotary position encoding (RoPE), used by the memory attention.
 * Channel pairs (2i, 2i+1) rotate by angles from the token's x (first half of the pairs) and
 * y (second half) grid position, theta 10000. Written with real arithmetic: x*cos + swap(x)*sin,
 * where swap(a, b) = (-b, a) is one rank-2 matMul with a fixed signed permutation.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Layer, shapeList, tensorList, type Shape } from './base';
import { Linear, softmax } from './common';

const f = Math.fround;

/** cos/sin tables [h*w, dim] (each pair's angle repeated on both its channels), row-major grid. */
export function axialRopeTables(
  dim: number,
  w: number,
  h: number,
  theta = 10000,
): { cos: Float32Array; sin: Float32Array } {
  const quarter = dim / 4;
  const freqs = new Float32Array(quarter);
  for (let k = 0; k < quarter; k++) freqs[k] = f(1 / f(Math.pow(theta, f((4 * k) / dim))));
  const n = w * h;
  const cos = new Float32Array(n * dim);
  const sin = new Float32Array(n * dim);
  for (let t = 0; t < n; t++) {
    const tx = t % w;
    const ty = Math.floor(t / w);
    for (let p = 0; p < dim / 2; p++) {
      const angle = p < quarter ? f(tx * freqs[p]) : f(ty * freqs[p - quarter]);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[t * dim + 2 * p] = cos[t * dim + 2 * p + 1] = c;
      sin[t * dim + 2 * p] = sin[t * dim + 2 * p + 1] = s;
    }
  }
  return { cos, sin };
}

/** The signed permutation R with x @ R = swap(x): (a, b) -> (-b, a) per channel pair. */
function swapMatrix(dim: number): tf.Tensor2D {
  const r = new Float32Array(dim * dim);
  for (let i = 0; i < dim; i += 2) {
    r[(i + 1) * dim + i] = -1;
    r[i * dim + i + 1] = 1;
  }
  return tf.tensor2d(r, [dim, dim]);
}

/** A run of query tokens of a grid (row-major), so two threads can each take a part. */
export interface GridRows {
  gridSize: number;
  start: number;
  count: number;
}

export class RoPEAttention extends Sam2Layer {
  static className = 'Sam2RoPEAttention';
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly outProj: Linear;
  private tables?: {
    side: number;
    cos: tf.Tensor2D;
    sin: tf.Tensor2D;
    cosT: tf.Tensor2D;
    sinT: tf.Tensor2D;
    swap: tf.Tensor2D;
  };

  constructor(
    key: string,
    readonly dim: number,
    kvInDim = dim,
    readonly theta = 10000,
  ) {
    super();
    this.remember<typeof RoPEAttention>(key, dim, kvInDim, theta);
    this.qProj = this.child(new Linear(`${key}.q_proj`, dim, dim));
    this.kProj = this.child(new Linear(`${key}.k_proj`, kvInDim, dim));
    this.vProj = this.child(new Linear(`${key}.v_proj`, kvInDim, dim));
    this.outProj = this.child(new Linear(`${key}.out_proj`, dim, dim));
  }

  protected override disposeDerived(): void {
    if (this.tables) {
      const { cos, sin, cosT, sinT, swap } = this.tables;
      tf.dispose([cos, sin, cosT, sinT, swap]);
    }
    this.tables = undefined;
  }

  /** Tables for a square grid of n tokens, cached; the transposed ones serve keys laid out [dim, n]. */
  private rope(n: number) {
    const side = Math.round(Math.sqrt(n));
    if (!this.tables || this.tables.side !== side) {
      this.disposeDerived();
      const { cos, sin } = axialRopeTables(this.dim, side, side, this.theta);
      const c = tf.tensor2d(cos, [n, this.dim]);
      const sn = tf.tensor2d(sin, [n, this.dim]);
      this.tables = {
        side,
        cos: c,
        sin: sn,
        cosT: tf.transpose(c),
        sinT: tf.transpose(sn),
        swap: swapMatrix(this.dim),
      };
      // built inside callers' tidy scopes: keep them past it
      for (const t of [c, sn, this.tables.cosT, this.tables.sinT, this.tables.swap]) tf.keep(t);
    }
    return this.tables;
  }

  /**
   * Rotates x [r * n, dim] (r repeats of the n-token grid), or, with `start`, x holding the
   * grid's tokens start .. start + rows - 1.
   */
  rotate(x: tf.Tensor2D, n: number, start?: number): tf.Tensor2D {
    return tf.tidy(() => {
      const t = this.rope(n);
      const swapped = tf.matMul(x, t.swap);
      if (start !== undefined) {
        const rows = x.shape[0];
        const cos = tf.slice(t.cos, [start, 0], [rows, -1]);
        const sin = tf.slice(t.sin, [start, 0], [rows, -1]);
        return tf.add(tf.mul(x, cos), tf.mul(swapped, sin)) as tf.Tensor2D;
      }
      const r = x.shape[0] / n;
      const xs = tf.reshape(x, [r, n, this.dim]);
      return tf.reshape(tf.add(tf.mul(xs, t.cos), tf.mul(tf.reshape(swapped, [r, n, this.dim]), t.sin)), [
        r * n,
        this.dim,
      ]) as tf.Tensor2D;
    });
  }

  /**
   * Rotated keys of one grid of n tokens x [n, kvInDim], transposed to [dim, n] (the layout the
   * fast matMul path wants). Keys of a memory are kProj(x + t) with t its temporal encoding;
   * kProj is affine and the rotation linear, so this part depends on x alone and callers cache
   * it while the memory lives; `gridKeyOffsetT` adds t's part each frame.
   */
  gridKeysT(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => tf.transpose(this.rotate(this.kProj.forward(x) as tf.Tensor2D, x.shape[0])) as tf.Tensor2D);
  }

  /** The rotated key term t @ W_k of a vector t [1, kvInDim] at every position of an n-token grid: [dim, n]. */
  gridKeyOffsetT(t: tf.Tensor2D, n: number): tf.Tensor2D {
    return tf.tidy(() => {
      const tables = this.rope(n);
      const c = tf.matMul(t, this.kProj.weight.read() as tf.Tensor2D); // [1, dim]
      const column = (v: tf.Tensor) => tf.reshape(v, [this.dim, 1]);
      return tf.add(
        tf.mul(tables.cosT, column(c)),
        tf.mul(tables.sinT, column(tf.matMul(c, tables.swap))),
      ) as tf.Tensor2D;
    });
  }

  /** Keys of tokens that get no rotation (object pointers), [dim, k]. */
  plainKeysT(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => tf.transpose(this.kProj.forward(x)) as tf.Tensor2D);
  }

  /**
   * Single-head attention (batch 1): q [Nq, dim], the tokens of an n-token grid from `rows.start`
   * on (default: the whole grid); keysT [dim, Nk] built from the methods above; values
   * [Nk, kvInDim] before v_proj. Softmax rows sum to one, so averaging the raw values and
   * projecting afterwards equals projecting first: with 64-channel memories that makes the value
   * product 4x cheaper. Queries go in chunks to bound the score matrix.
   */
  attend(q: tf.Tensor2D, keysT: tf.Tensor2D, values: tf.Tensor2D, rows?: GridRows): tf.Tensor2D {
    return tf.tidy(() => {
      const nq = q.shape[0];
      const qp = this.qProj.forward(q) as tf.Tensor2D;
      const qr = tf.mul(
        rows ? this.rotate(qp, rows.gridSize, rows.start) : this.rotate(qp, nq),
        1 / Math.sqrt(this.dim),
      ) as tf.Tensor2D;
      // 64 MB score matrices, each freed before the next: the wasm heap never shrinks, so a few
      // big blocks fragment it for everything that runs later
      const chunk = Math.max(256, Math.floor(2 ** 24 / keysT.shape[1]));
      const parts: tf.Tensor2D[] = [];
      for (let i = 0; i < nq; i += chunk) {
        parts.push(
          tf.tidy(() => {
            const qi = i === 0 && chunk >= nq ? qr : tf.slice(qr, [i, 0], [Math.min(chunk, nq - i), -1]);
            return tf.matMul(softmax(tf.matMul(qi, keysT)), values) as tf.Tensor2D;
          }),
        );
      }
      const averaged = parts.length === 1 ? parts[0] : (tf.concat(parts) as tf.Tensor2D);
      return this.outProj.forward(this.vProj.forward(averaged)) as tf.Tensor2D;
    });
  }

  /** Self-attention over a grid x [n, dim], every token rotated; with `rows`, only those queries. */
  selfAttend(x: tf.Tensor2D, rows?: GridRows): tf.Tensor2D {
    return tf.tidy(() => {
      const q = rows ? (tf.slice(x, [rows.start, 0], [rows.count, -1]) as tf.Tensor2D) : x;
      return this.attend(q, this.gridKeysT(x), x, rows);
    });
  }

  /**
   * tf.layers entry (batch 1, tokens row-major): [x [n, dim]] is self-attention over one grid;
   * [q [Nq, dim], k, v [Nk, kvInDim]] is the reference's cross-attention, where the keys are
   * repeats of q's grid (rotated) except the last `kwargs.numKExcludeRope` (not rotated).
   */
  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { numKExcludeRope?: number } = {}): tf.Tensor {
    const [q, k, v] = tensorList(inputs) as tf.Tensor2D[];
    if (!k) return this.selfAttend(q);
    return tf.tidy(() => {
      const plain = kwargs.numKExcludeRope ?? 0;
      const rotated = k.shape[0] - plain;
      const parts: tf.Tensor2D[] = [];
      if (rotated > 0) {
        const kp = this.kProj.forward(tf.slice(k, [0, 0], [rotated, -1])) as tf.Tensor2D;
        parts.push(tf.transpose(this.rotate(kp, q.shape[0])));
      }
      if (plain > 0) parts.push(this.plainKeysT(tf.slice(k, [rotated, 0], [plain, -1])));
      return this.attend(q, parts.length === 1 ? parts[0] : (tf.concat(parts, 1) as tf.Tensor2D), v);
    });
  }

  /** [q [Nq, dim], ...] -> [Nq, dim]. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return this.outProj.computeOutputShape(shapeList(inputShape)[0]);
  }
}
tf.serialization.registerClass(RoPEAttention);
