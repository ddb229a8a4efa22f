/**
 * The mask decoder: output tokens (object score, IoU, 4 mask tokens) plus prompt tokens run
 * through the two-way transformer with the image embedding; the image tokens are upscaled 4x
 * (transposed convs, adding the high-resolution features) and each mask token's hypernetwork
 * MLP turns them into mask logits. Also predicts IoU (sigmoid) and an object score.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Layer, shapeList, tensorList, type Shape } from '../layers/base';
import { LayerNorm, Mlp, gelu } from '../layers/common';
import { TwoWayTransformer, type ImageSideProjections } from '../layers/two_way_transformer';
import { batchMatMul } from '../layers/attention';
import { simdKernelsActive } from '../wasm_kernels';
import type { Sam2Config } from '../config';

const NUM_MASK_TOKENS = 4;

/** What differs between the SAM 2 decoder and SAM 1's (same maths otherwise). */
export interface MaskDecoderVariant {
  /** State-dict prefix: `sam_mask_decoder` (SAM 2) or `mask_decoder` (SAM 1). */
  prefix: string;
  /** SAM 2 predicts an object score from an extra output token; SAM 1 has neither. */
  objectScore: boolean;
  /** SAM 2 squashes the IoU head through a sigmoid; SAM 1 returns it raw. */
  iouSigmoid: boolean;
  /** Keys of the transformer MLPs' linears (SAM 1's MLPBlock: lin1, lin2). */
  transformerMlpNames?: string[];
}

export const SAM2_MASK_DECODER: MaskDecoderVariant = {
  prefix: 'sam_mask_decoder',
  objectScore: true,
  iouSigmoid: true,
};
export const SAM1_MASK_DECODER: MaskDecoderVariant = {
  prefix: 'mask_decoder',
  objectScore: false,
  iouSigmoid: false,
  transformerMlpNames: ['lin1', 'lin2'],
};

/** The config values the decoder reads (SAM 1 passes dynamicMultimaskViaStability false). */
export type MaskDecoderConfig = Pick<
  Sam2Config,
  'dynamicMultimaskViaStability' | 'dynamicMultimaskStabilityDelta' | 'dynamicMultimaskStabilityThresh'
>;

export interface MaskDecoderInput {
  /** [1 or B, h, w, 256]; broadcast over the prompt batch when repeatImage. */
  imageEmbeddings: tf.Tensor4D;
  /** [1, h, w, 256] from PromptEncoder.getDensePe() (broadcast over the batch). */
  imagePe: tf.Tensor4D;
  /** [B, N, 256]. */
  sparsePromptEmbeddings: tf.Tensor3D;
  /** [B, h, w, 256]. */
  densePromptEmbeddings: tf.Tensor4D;
  multimaskOutput: boolean;
  /** Use one image embedding for every prompt set of the batch. */
  repeatImage: boolean;
  /**
   * [feat_s0 [1 or B, 4h, 4w, 32], feat_s1 [1 or B, 2h, 2w, 64]], broadcast like the image;
   * absent for SAM 1.
   */
  highResFeatures?: [tf.Tensor4D, tf.Tensor4D];
}

/**
 * What every prompt without a mask input shares on one image (MaskDecoder.precomputeImage):
 * the image tokens with the no-mask embedding added, and the first transformer block's
 * projections of them (3 of the decoder's ~12 image-side 4096x256 matMuls per prompt).
 */
export interface DecoderImageCache {
  /** [1, h*w, 256] image embedding + dense (no-mask) prompt embedding. */
  src: tf.Tensor3D;
  block0: ImageSideProjections;
}

export type MaskDecoderOutput = {
  /** Low-resolution mask logits, NHWC with one channel per mask: [B, 4h, 4w, M] (M = 3 or 1). */
  masks: tf.Tensor4D;
  /** Predicted IoU per mask [B, M]. */
  iouPred: tf.Tensor2D;
  /** Output tokens of the returned masks, for object pointers [B, M', 256]. */
  samTokensOut: tf.Tensor3D;
  /** Object presence logits [B, 1] (10, i.e. present, without an object-score head, as the reference). */
  objectScoreLogits: tf.Tensor2D;
};

/** Fraction of pixels above +delta among those above -delta, per mask: [B, h, w, M] -> [B, M]. */
export function stabilityScores(logits: tf.Tensor4D, delta: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [b, h, w, m] = logits.shape;
    // pixels on the last axis, so the counts reduce it without transposing a cast of booleans
    // (tfjs-backend-webgpu 4.22 emits a shader that fails to compile for that transpose, and the
    // reduction then reads garbage)
    const flat =
      m === 1 ? tf.reshape(logits, [b, 1, h * w]) : tf.reshape(tf.transpose(logits, [0, 3, 1, 2]), [b, m, h * w]);
    const inter = tf.sum(tf.cast(tf.greater(flat, delta), 'float32'), 2);
    const union = tf.sum(tf.cast(tf.greater(flat, -delta), 'float32'), 2);
    return tf.where(tf.greater(union, 0), tf.div(inter, tf.maximum(union, 1)), tf.onesLike(union)) as tf.Tensor2D;
  });
}

export class MaskDecoder extends Sam2Layer {
  static className = 'Sam2MaskDecoder';
  readonly transformer: TwoWayTransformer;
  readonly ln1: LayerNorm;
  readonly hypernetworks: Mlp[];
  readonly iouHead: Mlp;
  readonly objScoreHead?: Mlp;
  private readonly iouToken: tf.LayerVariable;
  private readonly maskTokens: tf.LayerVariable;
  private readonly objScoreToken?: tf.LayerVariable;
  private readonly dc1: tf.LayerVariable;
  private readonly dc1Bias: tf.LayerVariable;
  private readonly dc2: tf.LayerVariable;
  private readonly dc2Bias: tf.LayerVariable;
  /** Transposed convs as matMul weights [I, 4*O] + depthToSpace (exact, ~3x faster on wasm). */
  private upscale?: { w1: tf.Tensor2D; b1: tf.Tensor1D; w2: tf.Tensor2D; b2: tf.Tensor1D };
  private outputTokens?: tf.Tensor2D;

  constructor(
    readonly config: MaskDecoderConfig,
    readonly variant: MaskDecoderVariant = SAM2_MASK_DECODER,
  ) {
    super();
    this.remember<typeof MaskDecoder>(config, variant);
    const d = 256;
    const P = variant.prefix;
    this.transformer = this.child(
      new TwoWayTransformer(`${P}.transformer`, 2, 256, 8, 2048, variant.transformerMlpNames),
    );
    this.iouToken = this.param(`${P}.iou_token.weight`, [1, d]);
    this.maskTokens = this.param(`${P}.mask_tokens.weight`, [NUM_MASK_TOKENS, d]);
    if (variant.objectScore) this.objScoreToken = this.param(`${P}.obj_score_token.weight`, [1, d]);
    this.dc1 = this.param(`${P}.output_upscaling.0.weight`, [2, 2, d / 4, d]);
    this.dc1Bias = this.param(`${P}.output_upscaling.0.bias`, [d / 4]);
    this.ln1 = this.child(new LayerNorm(`${P}.output_upscaling.1`, d / 4, 1e-6));
    this.dc2 = this.param(`${P}.output_upscaling.3.weight`, [2, 2, d / 8, d / 4]);
    this.dc2Bias = this.param(`${P}.output_upscaling.3.bias`, [d / 8]);
    this.hypernetworks = Array.from({ length: NUM_MASK_TOKENS }, (_, i) =>
      this.child(new Mlp(`${P}.output_hypernetworks_mlps.${i}`, d, d, d / 8, 3)),
    );
    this.iouHead = this.child(
      new Mlp(`${P}.iou_prediction_head`, d, 256, NUM_MASK_TOKENS, 3, 'relu', variant.iouSigmoid),
    );
    if (variant.objectScore) this.objScoreHead = this.child(new Mlp(`${P}.pred_obj_score_head`, d, d, 1, 3));
  }

  protected override onWeightsLoaded(): void {
    this.disposeDerived();
    const asMatMul = (w: tf.LayerVariable) =>
      tf.tidy(() => {
        const [kh, kw, o, i] = w.shape as number[];
        // (kh, kw, O, I) -> (I, kh, kw, O): depthToSpace reads channel (ky * 2 + kx) * O + o
        return tf.keep(tf.reshape(tf.transpose(w.read(), [3, 0, 1, 2]), [i, kh * kw * o]) as tf.Tensor2D);
      });
    this.upscale = {
      w1: asMatMul(this.dc1),
      b1: tf.keep(tf.tile(this.dc1Bias.read(), [4]) as tf.Tensor1D),
      w2: asMatMul(this.dc2),
      b2: tf.keep(tf.tile(this.dc2Bias.read(), [4]) as tf.Tensor1D),
    };
    this.outputTokens = tf.keep(
      tf.concat(
        [...(this.objScoreToken ? [this.objScoreToken.read()] : []), this.iouToken.read(), this.maskTokens.read()],
        0,
      ) as tf.Tensor2D,
    );
  }

  protected override disposeDerived(): void {
    if (this.upscale) tf.dispose(Object.values(this.upscale));
    this.outputTokens?.dispose();
    this.upscale = this.outputTokens = undefined;
  }

  /** 2x2 stride-2 transposed conv as one matMul and a pixel shuffle. */
  private upsample2x(x: tf.Tensor4D, w: tf.Tensor2D, bias: tf.Tensor1D): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, h, wd, c] = x.shape;
      const y = tf.fused.matMul({ a: tf.reshape(x, [b * h * wd, c]) as tf.Tensor2D, b: w, bias });
      // columns are (ky, kx, o): swapping the x and ky axes is a 4-D transpose, much faster on
      // wasm than the DepthToSpace kernel
      const o = w.shape[1] / 4;
      const t = tf.transpose(tf.reshape(y, [b * h, wd, 2, 2 * o]), [0, 2, 1, 3]);
      return tf.reshape(t, [b, 2 * h, 2 * wd, o]) as tf.Tensor4D;
    });
  }

  /**
   * Mask logits [b, 4h, 4w, count] of transformer image tokens [b, h, w, 256] and hypernetwork
   * outputs [b, 32, count]: upscale 4x (adding the high-resolution features), then one product.
   */
  private maskLogits(image: tf.Tensor4D, hyper: tf.Tensor3D, high?: [tf.Tensor4D, tf.Tensor4D]): tf.Tensor4D {
    const up = this.upscale!;
    const x1 = this.upsample2x(image, up.w1, up.b1);
    const y1 = gelu(this.ln1.forward(high ? tf.add(x1, high[1]) : x1)) as tf.Tensor4D;
    const x2 = this.upsample2x(y1, up.w2, up.b2);
    const upscaled = gelu(high ? tf.add(x2, high[0]) : x2) as tf.Tensor4D; // [b, 4h, 4w, 32]
    const [b, uh, uw, uc] = upscaled.shape;
    const count = hyper.shape[2];
    const pixels = tf.reshape(upscaled, [b, uh * uw, uc]) as tf.Tensor3D;
    if (b > 1 && count % 4 !== 0 && simdKernelsActive()) {
      // the SIMD kernel wants a multiple of 4 columns: a zero column, then the inner slice (one
      // batched call instead of one XNNPACK product per prompt, each packing its own hyper)
      const padded = tf.concat([hyper, tf.zeros([b, hyper.shape[1], 4 - (count % 4)])], 2) as tf.Tensor3D;
      const masks = tf.slice(batchMatMul(pixels, padded), [0, 0, 0], [b, uh * uw, count]);
      return tf.reshape(masks, [b, uh, uw, count]) as tf.Tensor4D;
    }
    return tf.reshape(batchMatMul(pixels, hyper), [b, uh, uw, count]) as tf.Tensor4D;
  }

  /**
   * The work every prompt without a mask input shares on one image: imageEmbedding [1, h, w,
   * 256], imagePe from PromptEncoder.getDensePe(), denseNoMask the prompt encoder's dense
   * embedding without a mask [1, h, w, 256]. The caller disposes the result (disposeImageCache).
   */
  precomputeImage(imageEmbedding: tf.Tensor4D, imagePe: tf.Tensor4D, denseNoMask: tf.Tensor4D): DecoderImageCache {
    const [, h, w, d] = imageEmbedding.shape;
    const src = tf.tidy(() => tf.reshape(tf.add(imageEmbedding, denseNoMask), [1, h * w, d]) as tf.Tensor3D);
    const pe = tf.reshape(imagePe, [1, h * w, d]) as tf.Tensor3D;
    const block0 = this.transformer.layers[0].projectImageSide(src, pe);
    pe.dispose();
    return { src, block0 };
  }

  /**
   * The masks of the mask tokens `tokens` (all four by default) and every score, before the
   * multimask selection. Picking tokens before the last matMul avoids slicing the inner axis of
   * the [B, 4h, 4w, 4] logits, which is slow on wasm.
   */
  predictMasks(
    input: MaskDecoderInput,
    cache?: DecoderImageCache,
    tokens: { first: number; count: number } = { first: 0, count: NUM_MASK_TOKENS },
  ) {
    return tf.tidy(() => {
      const { sparsePromptEmbeddings: sparse } = input;
      const b = sparse.shape[0];
      const d = 256;
      const allTokens = tf.concat(
        [tf.tile(tf.expandDims(this.outputTokens as tf.Tensor2D, 0), [b, 1, 1]), sparse],
        1,
      ) as tf.Tensor3D;
      // one image for many prompt sets stays batch 1: the transformer broadcasts it
      const [, h, w] = input.imageEmbeddings.shape;
      const src =
        cache?.src ??
        (tf.reshape(tf.add(input.imageEmbeddings, input.densePromptEmbeddings), [-1, h * w, d]) as tf.Tensor3D);
      const [hs, keys] = this.transformer.forward(
        src,
        tf.reshape(input.imagePe, [1, h * w, d]) as tf.Tensor3D,
        allTokens,
        cache?.block0,
      );
      // output tokens: [object score (SAM 2 only), IoU, 4 masks]
      const iouAt = this.objScoreHead ? 1 : 0;
      const maskTokensOut = tf.slice(hs, [0, iouAt + 1, 0], [b, NUM_MASK_TOKENS, d]);
      const picked = this.hypernetworks.slice(tokens.first, tokens.first + tokens.count);
      const hyper = tf.stack(
        picked.map((mlp, j) =>
          mlp.forward(tf.squeeze(tf.slice(maskTokensOut, [0, tokens.first + j, 0], [b, 1, d]), [1])),
        ),
        2,
      ) as tf.Tensor3D; // [b, 32, count]
      const image = tf.reshape(keys, [b, h, w, d]) as tf.Tensor4D;
      // the 4x upscaling makes [b, 4h, 4w, 32] maps (512 MB for an AMG batch of 64 at 1024 px,
      // several alive at once): prompts go in groups, each freed before the next
      const group = Math.max(1, Math.floor(2 ** 24 / (16 * h * w * 32)));
      const parts: tf.Tensor4D[] = [];
      for (let i = 0; i < b; i += group) {
        const n = Math.min(group, b - i);
        const one = n === b;
        parts.push(
          tf.tidy(() =>
            this.maskLogits(
              one ? image : tf.slice(image, [i, 0, 0, 0], [n, h, w, d]),
              one ? hyper : tf.slice(hyper, [i, 0, 0], [n, -1, -1]),
              input.highResFeatures,
            ),
          ),
        );
      }
      const masks = parts.length === 1 ? parts[0] : (tf.concat(parts, 0) as tf.Tensor4D);
      const iouPred = this.iouHead.forward(tf.squeeze(tf.slice(hs, [0, iouAt, 0], [b, 1, d]), [1])) as tf.Tensor2D;
      const objectScoreLogits = this.objScoreHead
        ? (this.objScoreHead.forward(tf.squeeze(tf.slice(hs, [0, 0, 0], [b, 1, d]), [1])) as tf.Tensor2D)
        : (tf.fill([b, 1], 10) as tf.Tensor2D);
      return { masks, iouPred, maskTokensOut: maskTokensOut as tf.Tensor3D, objectScoreLogits };
    });
  }

  /**
   * Like the reference MaskDecoder.forward, with its multimask and dynamic-stability selection.
   * `cache` (precomputeImage of this image) replaces the image embedding and the dense prompt
   * embedding, which must then be the no-mask one.
   */
  forward(input: MaskDecoderInput, cache?: DecoderImageCache): MaskDecoderOutput {
    return tf.tidy(() => {
      const dynamic = !input.multimaskOutput && this.config.dynamicMultimaskViaStability;
      const tokens = input.multimaskOutput
        ? { first: 1, count: 3 }
        : dynamic
          ? { first: 0, count: NUM_MASK_TOKENS }
          : { first: 0, count: 1 };
      const all = this.predictMasks(input, cache, tokens);
      const b = all.masks.shape[0];
      let masks: tf.Tensor4D;
      let iouPred: tf.Tensor2D;
      if (input.multimaskOutput) {
        masks = all.masks;
        iouPred = tf.slice(all.iouPred, [0, 1], [b, 3]);
      } else if (dynamic) {
        [masks, iouPred] = this.dynamicMultimaskViaStability(all.masks, all.iouPred);
      } else {
        masks = all.masks;
        iouPred = tf.slice(all.iouPred, [0, 0], [b, 1]);
      }
      const samTokensOut = input.multimaskOutput
        ? tf.slice(all.maskTokensOut, [0, 1, 0], [b, 3, 256])
        : tf.slice(all.maskTokensOut, [0, 0, 0], [b, 1, 256]);
      return { masks, iouPred, samTokensOut: samTokensOut as tf.Tensor3D, objectScoreLogits: all.objectScoreLogits };
    });
  }

  /**
   * tf.layers entry: inputs [imageEmbeddings, imagePe, sparsePromptEmbeddings,
   * densePromptEmbeddings, highResFeatures0, highResFeatures1] (see MaskDecoderInput);
   * kwargs.multimaskOutput defaults to true, as in SamPredictor. Returns [masks, iouPred,
   * samTokensOut, objectScoreLogits].
   */
  override call(
    inputs: tf.Tensor | tf.Tensor[],
    kwargs: { multimaskOutput?: boolean; repeatImage?: boolean } = {},
  ): tf.Tensor[] {
    const [imageEmbeddings, imagePe, sparse, dense, s0, s1] = tensorList(inputs);
    const out = this.forward({
      imageEmbeddings: imageEmbeddings as tf.Tensor4D,
      imagePe: imagePe as tf.Tensor4D,
      sparsePromptEmbeddings: sparse as tf.Tensor3D,
      densePromptEmbeddings: dense as tf.Tensor4D,
      multimaskOutput: kwargs.multimaskOutput ?? true,
      repeatImage: kwargs.repeatImage ?? false,
      highResFeatures: [s0 as tf.Tensor4D, s1 as tf.Tensor4D],
    });
    return [out.masks, out.iouPred, out.samTokensOut, out.objectScoreLogits];
  }

  /**
   * Batch B from the prompts, masks at 4x the embedding grid. The mask count M (3 or 1) is a
   * call argument that shapes do not carry, so it is left unknown (null).
   */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape[] {
    const [image, , sparse] = shapeList(inputShape);
    const b = sparse[0];
    const x4 = (n: number | null) => (n === null ? null : 4 * n);
    return [
      [b, x4(image[1]), x4(image[2]), null],
      [b, null],
      [b, null, 256],
      [b, 1],
    ];
  }

  /**
   * For single-mask output: keep mask 0 when its stability is high enough, else take the
   * multimask output with the highest predicted IoU. Public for the ONNX Runtime executor.
   */
  dynamicMultimaskViaStability(masks: tf.Tensor4D, ious: tf.Tensor2D): [tf.Tensor4D, tf.Tensor2D] {
    return tf.tidy(() => {
      const [b, h, w] = masks.shape;
      const multi = tf.slice(masks, [0, 0, 0, 1], [b, h, w, 3]);
      const multiIou = tf.slice(ious, [0, 1], [b, 3]);
      const pick = tf.oneHot(tf.argMax(multiIou, 1), 3); // [b, 3], selecting by 0/1 weights is exact
      const bestMask = tf.sum(tf.mul(multi, tf.reshape(pick, [b, 1, 1, 3])), 3, true);
      const bestIou = tf.sum(tf.mul(multiIou, pick), 1, true);
      const single = tf.slice(masks, [0, 0, 0, 0], [b, h, w, 1]) as tf.Tensor4D;
      const singleIou = tf.slice(ious, [0, 0], [b, 1]);
      const stable = tf.greaterEqual(
        stabilityScores(single, this.config.dynamicMultimaskStabilityDelta),
        this.config.dynamicMultimaskStabilityThresh,
      ); // [b, 1]
      // 0/1 weights select exactly (and broadcast, which tf.where does not)
      const keep = tf.reshape(tf.cast(stable, 'float32'), [b, 1, 1, 1]);
      const outMask = tf.add(tf.mul(single, keep), tf.mul(bestMask, tf.sub(1, keep))) as tf.Tensor4D;
      const outIou = tf.where(stable, singleIou, bestIou) as tf.Tensor2D;
      return [outMask, outIou];
    });
  }
}
tf.serialization.registerClass(MaskDecoder);

export function disposeImageCache(cache: DecoderImageCache | undefined): void {
  if (cache) tf.dispose([cache.src, ...Object.values(cache.block0)]);
}
