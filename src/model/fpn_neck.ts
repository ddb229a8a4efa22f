/**
 * The FPN neck: 1x1 lateral convs to d_model channels, top-down fusion (nearest 2x upsampling
 * and sum) only on the configured levels, and a sine position encoding per level.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Layer, shapeList, tensorList, type Shape } from '../layers/base';
import { Conv2d } from '../layers/common';
import { sinePositionEncoding } from '../layers/position_encoding';
import type { NeckConfig } from '../config';

export interface NeckOutput {
  /** Per level, highest resolution first: [B, h, w, dModel]. */
  features: tf.Tensor4D[];
  /** Matching sine encodings [1, h, w, dModel] (owned by the neck's cache: do not dispose). */
  pos: tf.Tensor4D[];
}

export class FpnNeck extends Sam2Layer {
  static className = 'Sam2FpnNeck';
  /** Lateral convs in the reference's order: convs[0] takes the lowest-resolution stage. */
  readonly convs: Conv2d[];
  private readonly posCache = new Map<string, tf.Tensor4D>();

  constructor(readonly cfg: NeckConfig) {
    super();
    this.remember<typeof FpnNeck>(cfg);
    this.convs = cfg.backboneChannelList.map((c, i) =>
      this.child(new Conv2d(`image_encoder.neck.convs.${i}.conv`, c, cfg.dModel, { kernel: 1 })),
    );
  }

  /** The sine encoding for an (h, w) grid, computed once and kept. */
  position(h: number, w: number): tf.Tensor4D {
    const key = `${h}x${w}`;
    let p = this.posCache.get(key);
    if (!p) {
      p = tf.keep(sinePositionEncoding(h, w, this.cfg.dModel));
      this.posCache.set(key, p);
    }
    return p;
  }

  protected override disposeDerived(): void {
    for (const p of this.posCache.values()) p.dispose();
    this.posCache.clear();
  }

  /** stages: the trunk outputs, highest resolution first. */
  forward(stages: tf.Tensor4D[]): NeckOutput {
    const n = this.convs.length - 1;
    const pos = stages.map((s) => this.position(s.shape[1], s.shape[2]));
    const features = tf.tidy(() => {
      const out: tf.Tensor4D[] = new Array(stages.length);
      let prev: tf.Tensor4D | undefined;
      for (let i = n; i >= 0; i--) {
        const lateral = this.convs[n - i].forward(stages[i]);
        if (prev && this.cfg.fpnTopDownLevels.includes(i)) {
          const [, h, w] = prev.shape;
          const up = tf.image.resizeNearestNeighbor(prev, [2 * h, 2 * w]);
          prev = tf.add(lateral, up) as tf.Tensor4D;
        } else {
          prev = lateral;
        }
        out[i] = prev;
      }
      return out;
    });
    return { features, pos };
  }

  /**
   * inputs: the trunk's stages, highest resolution first. Returns the levels, then their
   * position encodings (copies: the neck keeps its cached ones).
   */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    const { features, pos } = this.forward(tensorList(inputs) as tf.Tensor4D[]);
    return [...features, ...pos.map((p) => p.clone())];
  }

  /** Per stage [B, h, w, C]: levels [B, h, w, dModel], then encodings [1, h, w, dModel]. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape[] {
    const stages = shapeList(inputShape);
    const n = this.convs.length - 1;
    const features = stages.map((s, i) => this.convs[n - i].computeOutputShape(s));
    return [...features, ...features.map(([, h, w, c]) => [1, h, w, c])];
  }
}
tf.serialization.registerClass(FpnNeck);
