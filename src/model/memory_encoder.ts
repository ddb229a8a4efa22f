/**
 * The memory encoder: the (sigmoid-scaled) mask is downsampled 16x by strided convs and added
 * to a projection of the frame's features; two CXBlocks fuse them and a 1x1 conv projects to
 * the 64-channel memory, with its sine position encoding.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Layer, shapeList, tensorList, type Shape } from '../layers/base';
import { Conv2d, LayerNorm, gelu } from '../layers/common';
import { CXBlock } from '../layers/cx_block';
import { sinePositionEncoding } from '../layers/position_encoding';
import type { Sam2Config } from '../config';

const P = 'memory_encoder';

export interface MemoryEncoderOutput {
  /** [B, h, w, 64]. */
  visionFeatures: tf.Tensor4D;
  /** [1, h, w, 64] (cached by the encoder: do not dispose). */
  visionPosEnc: tf.Tensor4D;
}

export class MemoryEncoder extends Sam2Layer {
  static className = 'Sam2MemoryEncoder';
  /** Mask downsampler: 4 x (3x3 stride-2 conv, LayerNorm2d, GELU), then a 1x1 conv. */
  readonly downConvs: Conv2d[];
  readonly downNorms: LayerNorm[];
  readonly downOut: Conv2d;
  readonly pixFeatProj: Conv2d;
  readonly fuser: CXBlock[];
  readonly outProj: Conv2d;
  private pos?: tf.Tensor4D;

  constructor(readonly config: Sam2Config) {
    super();
    this.remember<typeof MemoryEncoder>(config);
    const d = config.neck.dModel;
    const chans = [1, 4, 16, 64, 256];
    this.downConvs = [];
    this.downNorms = [];
    for (let i = 0; i < 4; i++) {
      this.downConvs.push(
        this.child(
          new Conv2d(`${P}.mask_downsampler.encoder.${3 * i}`, chans[i], chans[i + 1], {
            kernel: 3,
            stride: 2,
            padding: 1,
          }),
        ),
      );
      this.downNorms.push(this.child(new LayerNorm(`${P}.mask_downsampler.encoder.${3 * i + 1}`, chans[i + 1], 1e-6)));
    }
    this.downOut = this.child(new Conv2d(`${P}.mask_downsampler.encoder.12`, 256, d, { kernel: 1 }));
    this.pixFeatProj = this.child(new Conv2d(`${P}.pix_feat_proj`, d, d, { kernel: 1 }));
    this.fuser = [0, 1].map((i) => this.child(new CXBlock(`${P}.fuser.layers.${i}`, d)));
    this.outProj = this.child(new Conv2d(`${P}.out_proj`, d, config.memoryDim, { kernel: 1 }));
  }

  protected override onWeightsLoaded(): void {
    this.disposeDerived();
    const s = this.config.imageSize / this.config.backboneStride;
    this.pos = tf.keep(sinePositionEncoding(s, s, this.config.memoryDim));
  }

  protected override disposeDerived(): void {
    this.pos?.dispose();
    this.pos = undefined;
  }

  /** Sine encoding of the memory grid [1, h, w, 64] (owned by the encoder). */
  get positionEncoding(): tf.Tensor4D {
    return this.pos as tf.Tensor4D;
  }

  /**
   * pixFeat [B, h, w, 256] (frame features without the no-memory embedding) and masks
   * [B, 16h, 16w, 1], already through the sigmoid (or binarized) and scaled.
   */
  forward(pixFeat: tf.Tensor4D, masks: tf.Tensor4D): MemoryEncoderOutput {
    const visionFeatures = tf.tidy(() => {
      let m: tf.Tensor4D = masks;
      for (let i = 0; i < 4; i++) m = gelu(this.downNorms[i].forward(this.downConvs[i].forward(m))) as tf.Tensor4D;
      m = this.downOut.forward(m);
      let x = tf.add(this.pixFeatProj.forward(pixFeat), m) as tf.Tensor4D;
      for (const blk of this.fuser) x = blk.forward(x);
      return this.outProj.forward(x);
    });
    return { visionFeatures, visionPosEnc: this.pos as tf.Tensor4D };
  }

  /**
   * tf.layers entry: inputs [pixFeat, masks] as in forward. Returns [visionFeatures,
   * visionPosEnc] (the encoding as a copy: the encoder keeps its cached one).
   */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    const [pixFeat, masks] = tensorList(inputs) as tf.Tensor4D[];
    const { visionFeatures, visionPosEnc } = this.forward(pixFeat, masks);
    return [visionFeatures, visionPosEnc.clone()];
  }

  /** [pixFeat [B, h, w, 256], masks] -> [[B, h, w, memoryDim], [1, s, s, memoryDim]] (s: the config's grid). */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape[] {
    const [pixFeat] = shapeList(inputShape);
    const s = this.config.imageSize / this.config.backboneStride;
    const features = this.outProj.computeOutputShape(this.pixFeatProj.computeOutputShape(pixFeat));
    return [features, [1, s, s, this.config.memoryDim]];
  }
}
tf.serialization.registerClass(MemoryEncoder);
