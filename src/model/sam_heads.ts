/**
 * The SAM heads: prompt encoder then mask decoder, once for every caller (image predictor,
 * automatic mask generator, video tracker), like the reference SAM2Base._forward_sam_heads.
 * Sam2Model and Sam1Model both expose it as `forwardSamHeads`.
 */
import * as tf from '@tensorflow/tfjs';
import type { PointPrompt, PromptEncoder } from './prompt_encoder';
import type { DecoderImageCache, MaskDecoder, MaskDecoderOutput } from './mask_decoder';

/**
 * Earlier low-res predictions are clamped to +-32 logits before they are returned or used as a
 * mask prompt (the reference's image predictor output, the video predictor's previous mask on a
 * corrected frame). The heads themselves take mask prompts as given: the mask-as-output path
 * prompts with the downsampled mask, which the reference does not clamp.
 */
export const MASK_LOGIT_LIMIT = 32;

/** An earlier prediction's low-res logits clamped to +-MASK_LOGIT_LIMIT (a new tensor). */
export function clampMaskLogits<T extends tf.Tensor>(logits: T): T {
  return tf.clipByValue(logits, -MASK_LOGIT_LIMIT, MASK_LOGIT_LIMIT);
}

export interface SamHeadsInput {
  /** [1 or B, s, s, 256]; one image is shared by every prompt set of the batch. */
  imageEmbed: tf.Tensor4D;
  /** SAM 2's two high-resolution levels, batched like imageEmbed (absent for SAM 1). */
  highRes?: [tf.Tensor4D, tf.Tensor4D];
  /**
   * [B, N, 2] model-input pixels and [B, N] labels, box corners (labels 2, 3) first. Without
   * points there are no sparse tokens (the image predictor's mask-only prompt); the tracker
   * passes one padding point (label -1) instead, as the reference does.
   */
  points?: PointPrompt;
  /** [B, 4s, 4s, 1] mask prompt (an earlier prediction goes through clampMaskLogits first). */
  maskInput?: tf.Tensor4D;
  multimaskOutput: boolean;
  /** MaskDecoder.precomputeImage of this image: the fast path, used for prompts without a mask. */
  cache?: DecoderImageCache;
}

/** The components the heads run, and how the model kind embeds boxes. */
export interface SamHeadsParts {
  readonly kind: 'sam1' | 'sam2';
  readonly promptEncoder: PromptEncoder;
  readonly maskDecoder: MaskDecoder;
}

/** Prompt encoder + mask decoder on one image; new tensors, the caller disposes them. */
export function forwardSamHeads(parts: SamHeadsParts, input: SamHeadsInput): MaskDecoderOutput {
  return tf.tidy(() => {
    const masks = input.maskInput;
    const points = input.points && input.points.coords.shape[1] > 0 ? input.points : undefined;
    const prompts =
      parts.kind === 'sam1' && points ? sam1Prompts(points, masks as tf.Tensor4D | undefined) : { points, masks };
    const { sparse, dense } = parts.promptEncoder.forward(prompts as Parameters<PromptEncoder['forward']>[0]);
    const b = sparse.shape[0];
    return parts.maskDecoder.forward(
      {
        imageEmbeddings: input.imageEmbed,
        imagePe: parts.promptEncoder.getDensePe(),
        sparsePromptEmbeddings: sparse,
        densePromptEmbeddings: dense,
        multimaskOutput: input.multimaskOutput,
        repeatImage: b > 1 && input.imageEmbed.shape[0] === 1,
        highResFeatures: input.highRes,
      },
      // the cache holds the no-mask dense embedding: a mask prompt takes the full path
      masks ? undefined : input.cache,
    );
  });
}

/**
 * SAM 1's prompt-encoder call: box corners (labels 2, 3 first) go as a box after the points,
 * and the points get the padding token only without a box.
 */
function sam1Prompts({ coords, labels }: PointPrompt, masks?: tf.Tensor4D) {
  const [b, n] = coords.shape;
  const hasBox = n >= 2 && labels.arraySync()[0][0] === 2;
  const start = hasBox ? 2 : 0;
  return {
    points:
      n > start
        ? {
            coords: tf.slice(coords, [0, start, 0], [b, n - start, 2]),
            labels: tf.slice(labels, [0, start], [b, n - start]),
          }
        : undefined,
    boxes: hasBox ? (tf.reshape(tf.slice(coords, [0, 0, 0], [b, 2, 2]), [b, 4]) as tf.Tensor2D) : undefined,
    masks,
  };
}
