/**
 * The image encoder as SAM 2 uses it: Hiera trunk + FPN neck, the `scalp` that drops the
 * lowest-resolution level, and the features the predictors cache: conv_s0/conv_s1 (1x1 convs
 * of the mask decoder) on the two high-resolution levels and the no-memory embedding added to
 * the lowest-resolution one.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Error } from '../errors';
import { Sam2Layer, shapeList, tensorList, type Shape } from '../layers/base';
import { Conv2d } from '../layers/common';
import type { Sam2Config } from '../config';
import { FpnNeck, type NeckOutput } from './fpn_neck';
import { Hiera } from './hiera';

/** What SAM2Base.forward_image returns, NHWC, highest resolution first. */
export interface BackboneOutput {
  /** [conv_s0(level0) [B,S/4,S/4,32], conv_s1(level1) [B,S/8,S/8,64], level2 [B,S/16,S/16,256]]. */
  backboneFpn: tf.Tensor4D[];
  /** Sine encodings of the three levels, [1, h, w, 256] (cached by the encoder: do not dispose). */
  visionPosEnc: tf.Tensor4D[];
}

/** The features SamPredictor caches per image. */
export interface ImageFeatures {
  /** Lowest-resolution level plus no_mem_embed: [B, S/16, S/16, 256]. */
  imageEmbed: tf.Tensor4D;
  /** [conv_s0 level [B,S/4,S/4,32], conv_s1 level [B,S/8,S/8,64]]. */
  highResFeats: [tf.Tensor4D, tf.Tensor4D];
}

export class ImageEncoder extends Sam2Layer {
  static className = 'Sam2ImageEncoder';
  readonly trunk: Hiera;
  readonly neck: FpnNeck;
  readonly convS0: Conv2d;
  readonly convS1: Conv2d;
  private readonly noMemEmbedVar: tf.LayerVariable;

  constructor(readonly config: Sam2Config) {
    super();
    this.remember<typeof ImageEncoder>(config);
    this.trunk = this.child(new Hiera(config.trunk));
    const expected = [...this.trunk.channels].reverse();
    if (expected.join() !== config.neck.backboneChannelList.join()) {
      throw new Sam2Error(
        'CONFIG',
        `Neck channels [${config.neck.backboneChannelList}] do not match the trunk's stage widths [${expected}].`,
      );
    }
    this.neck = this.child(new FpnNeck(config.neck));
    const d = config.neck.dModel;
    this.convS0 = this.child(new Conv2d('sam_mask_decoder.conv_s0', d, d / 8, { kernel: 1 }));
    this.convS1 = this.child(new Conv2d('sam_mask_decoder.conv_s1', d, d / 4, { kernel: 1 }));
    this.noMemEmbedVar = this.param('no_mem_embed', [1, 1, d]);
  }

  /** Builds the size-dependent position caches now, so memory stays flat from the first encode on. */
  protected override onWeightsLoaded(): void {
    const s = this.config.imageSize;
    this.trunk.positionEmbedding(Math.ceil(s / 4), Math.ceil(s / 4));
    for (let i = 0; i < 4; i++) this.neck.position(Math.ceil(s / 2 ** (i + 2)), Math.ceil(s / 2 ** (i + 2)));
  }

  /** The learned "no memory" embedding [1, 1, 256], added to image features without memories. */
  get noMemEmbed(): tf.Tensor {
    return this.noMemEmbedVar.read();
  }

  private checkInput(x: tf.Tensor): asserts x is tf.Tensor4D {
    const s = this.config.imageSize;
    if (x.rank !== 4 || x.shape[1] !== s || x.shape[2] !== s || x.shape[3] !== 3 || x.dtype !== 'float32') {
      throw new Sam2Error(
        'INPUT',
        `Image encoder input must be a float32 [B, ${s}, ${s}, 3] normalized NHWC tensor, got ${x.dtype} [${x.shape}]. ` +
          'Use SamPredictor.setImage to preprocess images.',
      );
    }
  }

  /** The four Hiera stage outputs, highest resolution first. */
  forwardTrunk(x: tf.Tensor4D): tf.Tensor4D[] {
    this.checkInput(x);
    return this.trunk.forward(x);
  }

  /** The neck's four levels (before scalp) with their position encodings. */
  forwardNeck(stages: tf.Tensor4D[]): NeckOutput {
    return this.neck.forward(stages);
  }

  /** Like the reference SAM2Base.forward_image: backbone features after scalp and conv_s0/s1. */
  forwardImage(x: tf.Tensor4D): BackboneOutput {
    this.checkInput(x);
    const stages = this.trunk.forward(x);
    const { features, pos } = this.neck.forward(stages);
    tf.dispose(stages);
    const keep = features.length - this.config.neck.scalp;
    const backboneFpn = tf.tidy(() => [
      this.convS0.forward(features[0]),
      this.convS1.forward(features[1]),
      ...features.slice(2, keep).map((f) => f.clone()),
    ]);
    tf.dispose(features);
    return { backboneFpn, visionPosEnc: pos.slice(0, keep) };
  }

  /** The features SamPredictor caches: image_embed and the two high-resolution levels. */
  imageFeatures(x: tf.Tensor4D): ImageFeatures {
    const { backboneFpn } = this.forwardImage(x);
    const [s0, s1, top] = backboneFpn;
    const imageEmbed = tf.tidy(() => tf.add(top, tf.reshape(this.noMemEmbed, [1, 1, 1, -1])) as tf.Tensor4D);
    top.dispose();
    return { imageEmbed, highResFeats: [s0, s1] };
  }

  /** tf.layers entry: a normalized image [B, S, S, 3] -> [imageEmbed, highResFeats0, highResFeats1] (imageFeatures). */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    const { imageEmbed, highResFeats } = this.imageFeatures(tensorList(inputs)[0] as tf.Tensor4D);
    return [imageEmbed, ...highResFeats];
  }

  /** [B, S, S, 3] -> [[B, S/16, S/16, 256], [B, S/4, S/4, 32], [B, S/8, S/8, 64]] (for S a multiple of 16). */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape[] {
    const levels = this.neck.computeOutputShape(this.trunk.computeOutputShape(shapeList(inputShape)[0]));
    return [levels[2], this.convS0.computeOutputShape(levels[0]), this.convS1.computeOutputShape(levels[1])];
  }
}
tf.serialization.registerClass(ImageEncoder);
