/**
 * The Hiera trunk: a 7x7/4 patch embedding, the "absolute-win" position embedding, and four
 * stages of MultiScaleBlocks that halve the resolution and double the width between stages.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Layer, shapeList, type Shape } from '../layers/base';
import { Conv2d } from '../layers/common';
import { MultiScaleBlock } from '../layers/hiera_block';
import type { HieraConfig } from '../config';

const PREFIX = 'image_encoder.trunk';

/** Per-block settings derived from the stage layout, as the reference builds them. */
export function hieraBlockSpecs(cfg: HieraConfig) {
  const stageEnds = cfg.stages.map((_, i) => cfg.stages.slice(0, i + 1).reduce((a, b) => a + b, 0) - 1);
  const qPoolBlocks = stageEnds
    .slice(0, -1)
    .map((e) => e + 1)
    .slice(0, cfg.qPool);
  const depth = stageEnds[stageEnds.length - 1] + 1;
  const specs = [];
  let dim = cfg.embedDim;
  let heads = cfg.numHeads;
  let stage = 0;
  for (let i = 0; i < depth; i++) {
    // the first block of a stage still uses the previous stage's window (then pools it)
    const windowSize = cfg.globalAttBlocks.includes(i) ? 0 : cfg.windowSpec[stage];
    let dimOut = dim;
    if (stageEnds.includes(i - 1)) {
      dimOut = Math.floor(dim * cfg.dimMul);
      heads = Math.floor(heads * cfg.headMul);
      stage++;
    }
    specs.push({ dim, dimOut, numHeads: heads, windowSize, qPool: qPoolBlocks.includes(i), mlpRatio: cfg.mlpRatio });
    dim = dimOut;
  }
  return { specs, stageEnds };
}

/** PyTorch F.interpolate(mode="bicubic", align_corners=False) weights along one axis. */
function bicubicTaps(inSize: number, outSize: number): { idx: Int32Array; w: Float64Array } {
  const A = -0.75;
  const scale = inSize / outSize;
  const idx = new Int32Array(outSize * 4);
  const w = new Float64Array(outSize * 4);
  const cubic1 = (t: number) => ((A + 2) * t - (A + 3)) * t * t + 1; // |t| <= 1
  const cubic2 = (t: number) => ((A * t - 5 * A) * t + 8 * A) * t - 4 * A; // 1 < |t| < 2
  for (let o = 0; o < outSize; o++) {
    const real = (o + 0.5) * scale - 0.5; // not clamped for cubic, as PyTorch
    const i0 = Math.floor(real);
    const t = real - i0;
    const ws = [cubic2(t + 1), cubic1(t), cubic1(1 - t), cubic2(2 - t)];
    for (let k = 0; k < 4; k++) {
      idx[o * 4 + k] = Math.min(Math.max(i0 - 1 + k, 0), inSize - 1);
      w[o * 4 + k] = ws[k];
    }
  }
  return { idx, w };
}

/** Bicubic resize of NHWC data [h, w, c] to [oh, ow, c] with PyTorch's semantics. */
export function resizeBicubic(
  src: Float32Array,
  h: number,
  w: number,
  c: number,
  oh: number,
  ow: number,
): Float32Array {
  const tx = bicubicTaps(w, ow);
  const ty = bicubicTaps(h, oh);
  const rows = new Float64Array(h * ow * c); // resized along x first
  for (let y = 0; y < h; y++)
    for (let x = 0; x < ow; x++)
      for (let k = 0; k < 4; k++) {
        const wt = tx.w[x * 4 + k];
        const s = (y * w + tx.idx[x * 4 + k]) * c;
        const d = (y * ow + x) * c;
        for (let ch = 0; ch < c; ch++) rows[d + ch] += wt * src[s + ch];
      }
  const out = new Float32Array(oh * ow * c);
  for (let y = 0; y < oh; y++)
    for (let k = 0; k < 4; k++) {
      const wt = ty.w[y * 4 + k];
      const s = ty.idx[y * 4 + k] * ow * c;
      const d = y * ow * c;
      for (let i = 0; i < ow * c; i++) out[d + i] += wt * rows[s + i];
    }
  return out;
}

export class Hiera extends Sam2Layer {
  static className = 'Sam2Hiera';
  readonly patchEmbed: Conv2d;
  readonly blocks: MultiScaleBlock[];
  readonly stageEnds: number[];
  private readonly posEmbed: tf.LayerVariable;
  private readonly posEmbedWindow: tf.LayerVariable;
  /** Position embedding at the patch grid size, built once per loaded weights. */
  private posCache?: tf.Tensor4D;

  constructor(readonly cfg: HieraConfig) {
    super();
    this.remember<typeof Hiera>(cfg);
    const c = cfg.embedDim;
    this.patchEmbed = this.child(new Conv2d(`${PREFIX}.patch_embed.proj`, 3, c, { kernel: 7, stride: 4, padding: 3 }));
    const [bh, bw] = cfg.windowPosEmbedBkgSpatialSize;
    this.posEmbed = this.param(`${PREFIX}.pos_embed`, [1, bh, bw, c]);
    const ws0 = cfg.windowSpec[0];
    this.posEmbedWindow = this.param(`${PREFIX}.pos_embed_window`, [1, ws0, ws0, c]);
    const { specs, stageEnds } = hieraBlockSpecs(cfg);
    this.stageEnds = stageEnds;
    this.blocks = specs.map((s, i) => this.child(new MultiScaleBlock(`${PREFIX}.blocks.${i}`, s)));
  }

  /** Channel widths of the four stage outputs, highest resolution first. */
  get channels(): number[] {
    return this.stageEnds.map((e) => this.blocks[e].opts.dimOut);
  }

  protected override onWeightsLoaded(): void {
    this.disposeDerived();
  }

  protected override disposeDerived(): void {
    this.posCache?.dispose();
    this.posCache = undefined;
  }

  /** Background embedding resized bicubically to (h, w) plus the window embedding tiled over it (cached). */
  positionEmbedding(h: number, w: number): tf.Tensor4D {
    if (this.posCache && this.posCache.shape[1] === h && this.posCache.shape[2] === w) return this.posCache;
    this.posCache?.dispose();
    const c = this.cfg.embedDim;
    const [bh, bw] = this.cfg.windowPosEmbedBkgSpatialSize;
    const bg = resizeBicubic(this.posEmbed.read().dataSync() as Float32Array, bh, bw, c, h, w);
    const ws = this.cfg.windowSpec[0];
    const win = this.posEmbedWindow.read().dataSync() as Float32Array;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const o = (y * w + x) * c;
        const s = ((y % ws) * ws + (x % ws)) * c;
        for (let ch = 0; ch < c; ch++) bg[o + ch] += win[s + ch];
      }
    this.posCache = tf.keep(tf.tensor4d(bg, [1, h, w, c]));
    return this.posCache;
  }

  /** x: [B, S, S, 3] normalized image. Returns the four stage outputs, highest resolution first. */
  forward(x: tf.Tensor4D): tf.Tensor4D[] {
    // the 7x7 stride-4 conv with padding 3 gives ceil(S / 4) positions per side
    const pos = this.positionEmbedding(Math.ceil(x.shape[1] / 4), Math.ceil(x.shape[2] / 4));
    return tf.tidy(() => {
      let h = tf.add(this.patchEmbed.forward(x), pos) as tf.Tensor4D;
      const outputs: tf.Tensor4D[] = [];
      this.blocks.forEach((blk, i) => {
        h = blk.forward(h);
        if (this.stageEnds.includes(i)) outputs.push(h);
      });
      return outputs;
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    return this.forward((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D);
  }

  /** [B, S, S, 3] -> the four stage outputs [B, h, w, C], highest resolution first. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape[] {
    let shape = this.patchEmbed.computeOutputShape(shapeList(inputShape)[0]);
    const outputs: Shape[] = [];
    this.blocks.forEach((blk, i) => {
      shape = blk.computeOutputShape(shape);
      if (this.stageEnds.includes(i)) outputs.push(shape);
    });
    return outputs;
  }
}
tf.serialization.registerClass(Hiera);
