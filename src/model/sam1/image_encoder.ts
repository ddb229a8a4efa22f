/**
 * The SAM 1 image encoder (ImageEncoderViT): 16x16 patch embedding, absolute position
 * embedding, ViT blocks (windowed and global attention with relative positions) and the neck
 * (1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d) down to 256 channels. NHWC.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Error } from '../../errors';
import { Sam2Layer, shapeList, type Shape } from '../../layers/base';
import { Conv2d, LayerNorm } from '../../layers/common';
import { VitBlock } from '../../layers/vit_block';
import type { Sam1Config } from '../../config_sam1';

const P = 'image_encoder';

/**
 * Block weights (float32 bytes) above which the MLPs run without XNNPACK's cached packed copies
 * (`uncachedMlp`, in token chunks): ViT-H's 2.5 GB plus ~1.7 GB of packed MLP weights overflow the 4 GB wasm
 * heap, while ViT-B (0.34 GB) and ViT-L (1.2 GB) fit with the cache and keep it.
 */
export const UNCACHED_WEIGHT_BYTES = 1.5e9;

/** Float32 bytes of the ViT blocks' attention and MLP weights. */
export function vitBlockWeightBytes(v: Sam1Config['vit']): number {
  return v.depth * (4 + 2 * v.mlpRatio) * v.embedDim * v.embedDim * 4;
}

/** The features SamPredictor caches per image with SAM 1 (no high-resolution levels). */
export interface Sam1ImageFeatures {
  /** Neck output [B, S/16, S/16, 256]. */
  imageEmbed: tf.Tensor4D;
}

export class Sam1ImageEncoder extends Sam2Layer {
  static className = 'Sam2Sam1ImageEncoder';
  readonly patchEmbed: Conv2d;
  readonly blocks: VitBlock[];
  readonly neckConv1: Conv2d;
  readonly neckNorm1: LayerNorm;
  readonly neckConv2: Conv2d;
  readonly neckNorm2: LayerNorm;
  private readonly posEmbed: tf.LayerVariable;
  /** pos_embed at this config's grid size (resized when imageSize is not 1024). */
  private posEmbedResized?: tf.Tensor4D;

  constructor(readonly config: Sam1Config) {
    super();
    this.remember<typeof Sam1ImageEncoder>(config);
    const v = config.vit;
    const grid = config.imageSize / v.patchSize;
    const pretrainGrid = v.pretrainImgSize / v.patchSize;
    const uncachedWeights = vitBlockWeightBytes(v) > UNCACHED_WEIGHT_BYTES;
    this.patchEmbed = this.child(
      new Conv2d(`${P}.patch_embed.proj`, 3, v.embedDim, { kernel: v.patchSize, stride: v.patchSize }),
    );
    this.posEmbed = this.param(`${P}.pos_embed`, [1, pretrainGrid, pretrainGrid, v.embedDim]);
    this.blocks = Array.from({ length: v.depth }, (_, i) => {
      const global = v.globalAttnIndexes.includes(i);
      // the stored tables cover the pretraining grid (global) or the window (windowed)
      const stored = global ? pretrainGrid : v.windowSize;
      return this.child(
        new VitBlock(
          `${P}.blocks.${i}`,
          {
            dim: v.embedDim,
            numHeads: v.numHeads,
            mlpRatio: v.mlpRatio,
            windowSize: global ? 0 : v.windowSize,
            inputSize: global ? grid : v.windowSize,
            uncachedWeights,
          },
          2 * stored - 1,
        ),
      );
    });
    this.neckConv1 = this.child(new Conv2d(`${P}.neck.0`, v.embedDim, v.outChans, { kernel: 1, bias: false }));
    this.neckNorm1 = this.child(new LayerNorm(`${P}.neck.1`, v.outChans, 1e-6));
    this.neckConv2 = this.child(
      new Conv2d(`${P}.neck.2`, v.outChans, v.outChans, { kernel: 3, padding: 1, bias: false }),
    );
    this.neckNorm2 = this.child(new LayerNorm(`${P}.neck.3`, v.outChans, 1e-6));
  }

  protected override onWeightsLoaded(): void {
    this.disposeDerived();
    const grid = this.config.imageSize / this.config.vit.patchSize;
    const pe = this.posEmbed.read() as tf.Tensor4D;
    // bilinear (align_corners=False) resize of the learned grid for other input sizes
    this.posEmbedResized = tf.tidy(() =>
      tf.keep(pe.shape[1] === grid ? pe.clone() : tf.image.resizeBilinear(pe, [grid, grid], false, true)),
    );
  }

  protected override disposeDerived(): void {
    this.posEmbedResized?.dispose();
    this.posEmbedResized = undefined;
  }

  private checkInput(x: tf.Tensor): asserts x is tf.Tensor4D {
    const s = this.config.imageSize;
    if (x.rank !== 4 || x.shape[1] !== s || x.shape[2] !== s || x.shape[3] !== 3 || x.dtype !== 'float32') {
      throw new Sam2Error(
        'INPUT',
        `Image encoder input must be a float32 [B, ${s}, ${s}, 3] normalized, padded NHWC tensor, got ${x.dtype} [${x.shape}]. ` +
          'Use SamPredictor.setImage to preprocess images.',
      );
    }
  }

  /**
   * Runs the encoder; `onBlock(i, out)` sees each block's output [B, S/16, S/16, C] (for
   * parity checks; the tensor is freed after the call returns).
   */
  forward(x: tf.Tensor4D, onBlock?: (index: number, out: tf.Tensor4D) => void): tf.Tensor4D {
    this.checkInput(x);
    let h = tf.tidy(() => tf.add(this.patchEmbed.forward(x), this.posEmbedResized as tf.Tensor4D) as tf.Tensor4D);
    this.blocks.forEach((block, i) => {
      const next = block.forward(h);
      h.dispose();
      h = next;
      onBlock?.(i, h);
    });
    const out = tf.tidy(() => {
      const y = this.neckNorm1.forward(this.neckConv1.forward(h)) as tf.Tensor4D;
      return this.neckNorm2.forward(this.neckConv2.forward(y)) as tf.Tensor4D;
    });
    h.dispose();
    return out;
  }

  /** The features SamPredictor caches: the image embedding. */
  imageFeatures(x: tf.Tensor4D): Sam1ImageFeatures {
    return { imageEmbed: this.forward(x) };
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D);
  }

  /** [B, S, S, 3] -> [B, S/16, S/16, 256]. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const [b, h, w] = shapeList(inputShape)[0];
    const p = this.config.vit.patchSize;
    return [b, h === null ? null : h / p, w === null ? null : w / p, this.config.vit.outChans];
  }
}
tf.serialization.registerClass(Sam1ImageEncoder);
