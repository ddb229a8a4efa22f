/**
 * Attention with 2-D axial rotary position encoding (RoPE), used by the memory attention.
 * Channel pairs (2i, 2i+1) rotate by angles from the token's x (first half of the pairs) and
 * y (second half) grid position, theta 10000. Written with real arithmetic: x*cos + swap(x)*sin,
 * where swap(a, b) = (-b, a) is one rank-2 matMul with a fixed signed permutation.
 *
 * Factored scores (cross-attention to spatial memories, with the wasm SIMD kernels): a memory
 * token's key is rot_(x,y)(W u + b), u its 64 input channels. The first half of the channels
 * rotates with x only and the second with y only, so q . key = sum over c of u_c (G_c(x) + H_c(y))
 * plus the bias's part, where G_c(x) = q[:128] . rot_x(W_c)[:128] and H_c(y) likewise: one
 * product of each query with the rotated weights of every x and every y (per query, 2 x 64 x 65 x
 * 128 multiply-adds, shared by every memory), then 64 multiply-adds a score instead of 256
 * (Sam2RopeScores, src/ops/simd_kernels.wat). The same sums, grouped differently: float32 rounding
 * differs from the direct products, not the math.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Layer, shapeList, tensorList, type Shape } from './base';
import { Linear, softmax } from './common';
import { ROPE_SCORES_KERNEL } from '../ops/simd';
import { simdKernelsActive } from '../wasm_kernels';

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

/** Input channels of a memory token's key for the factored scores (SAM 2's memory dimension). */
const FACTORED_KEY_DIM = 64;

/**
 * Spatial memories packed for the factored scores (see the file's comment): u holds every
 * memory's key input (features + position and temporal encodings, 64 channels) as
 * [ceil(count / 4), gridH, gridW / 4, 64, 4 memories, 4 positions] (zeros past count), shared
 * by every layer; pointersT [dim, P] are one layer's keys of tokens without rotation, scored
 * after the memories.
 */
export interface FactoredKeys {
  u: tf.Tensor;
  count: number;
  side: number;
  pointersT?: tf.Tensor2D;
}

/** Packs key inputs [count, n, 64] of a side x side grid for FactoredKeys.u. */
export function packFactoredKeys(keyInputs: tf.Tensor3D, side: number): tf.Tensor {
  return tf.tidy(() => {
    const [count, , c] = keyInputs.shape;
    const groups = Math.ceil(count / 4);
    const padded =
      groups * 4 === count ? keyInputs : tf.concat([keyInputs, tf.zeros([groups * 4 - count, side * side, c])]);
    const blocks = tf.reshape(padded, [groups, 4, side, side / 4, 4, c]);
    return tf.transpose(blocks, [0, 2, 3, 5, 1, 4]);
  });
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
  /** The rotated key weights of every x and every y (FactoredKeys), per grid side. */
  private factoredWeights?: { side: number; gx: tf.Tensor2D; hy: tf.Tensor2D };

  constructor(
    key: string,
    readonly dim: number,
    readonly kvInDim = dim,
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
    if (this.factoredWeights) tf.dispose([this.factoredWeights.gx, this.factoredWeights.hy]);
    this.factoredWeights = undefined;
  }

  /**
   * Whether attend can take FactoredKeys for memories on a side x side grid: the wasm SIMD
   * kernels run, keys come from 64 channels, and the side is a multiple of 4 (positions go in 4s).
   */
  factoredScoresAvailable(side: number): boolean {
    return (
      this.kvInDim === FACTORED_KEY_DIM &&
      this.dim % 4 === 0 &&
      side % 4 === 0 &&
      side > 0 &&
      simdKernelsActive() &&
      tf.getKernel(ROPE_SCORES_KERNEL, 'wasm') !== undefined
    );
  }

  /**
   * The key weights and bias (65 rows: W_c, then b) rotated at every x (columns in
   * Sam2RopeScores' g order: x / 4, row, x % 4; first half of the channels) and at every y (h
   * order: y, row; second half), as [dim / 2, side * 65] each. Cached while the weights live.
   */
  private rotatedKeyWeights(side: number): { gx: tf.Tensor2D; hy: tf.Tensor2D } {
    if (!this.factoredWeights || this.factoredWeights.side !== side) {
      if (this.factoredWeights) tf.dispose([this.factoredWeights.gx, this.factoredWeights.hy]);
      const half = this.dim / 2;
      const [gx, hy] = tf.tidy(() => {
        const t = this.rope(side * side);
        const rows = tf.concat([
          this.kProj.weight.read() as tf.Tensor2D,
          tf.reshape(this.kProj.bias!.read(), [1, this.dim]),
        ]) as tf.Tensor2D; // [65, dim]
        const swapped = tf.matMul(rows, t.swap);
        // rotation at grid positions `at` (n of them): [n, 65, dim]
        const rotatedAt = (cos: tf.Tensor2D, sin: tf.Tensor2D) =>
          tf.add(
            tf.mul(tf.expandDims(rows, 0), tf.expandDims(cos, 1)),
            tf.mul(tf.expandDims(swapped, 0), tf.expandDims(sin, 1)),
          );
        // positions (x, 0) rotate the first half by x; positions (0, y) the second half by y
        const atX = rotatedAt(tf.slice(t.cos, [0, 0], [side, -1]), tf.slice(t.sin, [0, 0], [side, -1]));
        const step = [side, 1];
        const atY = rotatedAt(
          tf.stridedSlice(t.cos, [0, 0], [side * side, this.dim], step) as tf.Tensor2D,
          tf.stridedSlice(t.sin, [0, 0], [side * side, this.dim], step) as tf.Tensor2D,
        );
        const x = tf.reshape(tf.slice(atX, [0, 0, 0], [-1, -1, half]), [side / 4, 4, 65, half]);
        const y = tf.slice(atY, [0, 0, half], [-1, -1, half]);
        return [
          tf.reshape(tf.transpose(x, [3, 0, 2, 1]), [half, side * 65]) as tf.Tensor2D,
          tf.reshape(tf.transpose(y, [2, 0, 1]), [half, side * 65]) as tf.Tensor2D,
        ];
      });
      // built inside callers' tidy scopes: keep them past it
      this.factoredWeights = { side, gx: tf.keep(gx), hy: tf.keep(hy) };
    }
    return this.factoredWeights;
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
   * on (default: the whole grid); keys either keysT [dim, Nk] built from the methods above or
   * FactoredKeys (spatial memories, then pointers); values [Nk, kvInDim] before v_proj, in the
   * keys' order. Softmax rows sum to one, so averaging the raw values and projecting afterwards
   * equals projecting first: with 64-channel memories that makes the value product 4x cheaper.
   * Queries go in chunks to bound the score matrix.
   */
  attend(q: tf.Tensor2D, keys: tf.Tensor2D | FactoredKeys, values: tf.Tensor2D, rows?: GridRows): tf.Tensor2D {
    return tf.tidy(() => {
      const nq = q.shape[0];
      const qp = this.qProj.forward(q) as tf.Tensor2D;
      const qr = tf.mul(
        rows ? this.rotate(qp, rows.gridSize, rows.start) : this.rotate(qp, nq),
        1 / Math.sqrt(this.dim),
      ) as tf.Tensor2D;
      const scoresOf = keys instanceof tf.Tensor ? (qi: tf.Tensor2D) => tf.matMul(qi, keys) : this.factoredScores(keys);
      const numKeys = values.shape[0];
      // 64 MB score matrices, each freed before the next: the wasm heap never shrinks, so a few
      // big blocks fragment it for everything that runs later
      const chunk = Math.max(256, Math.floor(2 ** 24 / numKeys));
      const parts: tf.Tensor2D[] = [];
      for (let i = 0; i < nq; i += chunk) {
        parts.push(
          tf.tidy(() => {
            const qi = i === 0 && chunk >= nq ? qr : tf.slice(qr, [i, 0], [Math.min(chunk, nq - i), -1]);
            return tf.matMul(softmax(scoresOf(qi)), values) as tf.Tensor2D;
          }),
        );
      }
      const averaged = parts.length === 1 ? parts[0] : (tf.concat(parts) as tf.Tensor2D);
      return this.outProj.forward(this.vProj.forward(averaged)) as tf.Tensor2D;
    });
  }

  /** Scores of rotated, scaled queries qi [rows, dim] against FactoredKeys: [rows, count * n + P]. */
  private factoredScores(keys: FactoredKeys): (qi: tf.Tensor2D) => tf.Tensor2D {
    const { gx, hy } = this.rotatedKeyWeights(keys.side);
    const half = this.dim / 2;
    return (qi) =>
      tf.tidy(() => {
        const inputs: tf.NamedTensorMap = {
          g: tf.matMul(tf.slice(qi, [0, 0], [-1, half]), gx),
          h: tf.matMul(tf.slice(qi, [0, half], [-1, half]), hy),
          u: keys.u,
        };
        if (keys.pointersT) inputs.p = tf.matMul(qi, keys.pointersT);
        const attrs = { xBlocks: keys.side / 4, gridH: keys.side, tCount: keys.count };
        return tf.engine().runKernel(ROPE_SCORES_KERNEL, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
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
