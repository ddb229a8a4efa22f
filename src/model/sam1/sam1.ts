/** The assembled SAM 1 model: ViT image encoder, prompt encoder and mask decoder from one config. */
import { Sam2Error } from '../../errors';
import { buildWithWeights } from '../../layers/base';
import type { Weights } from '../../weights';
import { PromptEncoder } from '../prompt_encoder';
import { MaskDecoder, SAM1_MASK_DECODER } from '../mask_decoder';
import type { Sam1Config } from '../../config_sam1';
import { Sam1ImageEncoder } from './image_encoder';
import { forwardSamHeads, type SamHeadsInput } from '../sam_heads';
import type { MaskDecoderOutput } from '../mask_decoder';

export class Sam1Model {
  /** Tells the model kinds apart (Sam2Model has kind 'sam2'). */
  readonly kind = 'sam1' as const;
  readonly imageEncoder: Sam1ImageEncoder;
  readonly promptEncoder: PromptEncoder;
  readonly maskDecoder: MaskDecoder;
  /** SAM 1 has no video components. */
  readonly video = undefined;

  /**
   * Builds every component for `config` and loads `weights` (PyTorch keys, TF.js layout).
   * Every key must be consumed and every parameter found, or a WEIGHTS error names them.
   * The caller may dispose `weights` afterwards.
   */
  constructor(
    readonly config: Sam1Config,
    weights: Weights,
  ) {
    // parameters start as references to the weights (ViT-H cannot hold a zero-filled copy too)
    [this.imageEncoder, this.promptEncoder, this.maskDecoder] = buildWithWeights(
      weights,
      () =>
        [
          new Sam1ImageEncoder(config),
          new PromptEncoder(config, 'prompt_encoder'),
          // SAM 1's predictor returns mask 0 for single-mask output: no stability-based switch
          new MaskDecoder(
            {
              dynamicMultimaskViaStability: false,
              dynamicMultimaskStabilityDelta: 0.05,
              dynamicMultimaskStabilityThresh: 0.98,
            },
            SAM1_MASK_DECODER,
          ),
        ] as const,
    );
    weights.checkKeys(this.paramKeys(), config.name);
    for (const c of this.components()) c.loadFrom(weights);
  }

  private components() {
    return [this.imageEncoder, this.promptEncoder, this.maskDecoder];
  }

  /** Prompt encoder + mask decoder on one image (box corners go as SAM 1's box prompt); the caller disposes the result. */
  forwardSamHeads(input: SamHeadsInput): MaskDecoderOutput {
    return forwardSamHeads(this, input);
  }

  /** SAM 1 cannot track videos: a CONFIG error that says what to use instead. */
  tracker(): never {
    throw new Sam2Error(
      'CONFIG',
      `${this.config.name} is a SAM 1 model, which has no memory for video: use a SAM 2 checkpoint (e.g. sam2.1_hiera_tiny) to track videos.`,
    );
  }

  /** Every PyTorch key the model loads. */
  paramKeys(): string[] {
    return this.components().flatMap((c) => c.paramKeys());
  }

  countParams(): number {
    return this.components().reduce((n, c) => n + c.countParams(), 0);
  }

  /** Frees every tensor the model holds. */
  dispose(): void {
    for (const c of this.components()) c.disposeAll();
  }
}
