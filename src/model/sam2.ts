/** The assembled SAM 2 model: every component built from one config and loaded from one set of weights. */
import { Sam2Error } from '../errors';
import type { Sam2Config } from '../config';
import type { Weights } from '../weights';
import { ImageEncoder } from './image_encoder';
import { PromptEncoder } from './prompt_encoder';
import { MaskDecoder } from './mask_decoder';
import { MemoryAttention } from './memory_attention';
import { MemoryEncoder } from './memory_encoder';
import { TrackingParams, Tracker } from './tracker';
import { TfjsExecutor, type Sam2Executor } from './executor';
import { forwardSamHeads, type SamHeadsInput } from './sam_heads';
import type { MaskDecoderOutput } from './mask_decoder';

/**
 * Parameters only video tracking uses (memory encoder, memory attention, object pointers,
 * temporal encodings). Weights without them make an image-only model.
 */
export const VIDEO_KEY =
  /^(memory_encoder|memory_attention|obj_ptr_proj|obj_ptr_tpos_proj|mask_downsample)\.|^(maskmem_tpos_enc|no_mem_pos_enc|no_obj_ptr|no_obj_embed_spatial)$/;

export class Sam2Model {
  /** Tells the model kinds apart (Sam1Model has kind 'sam1'). */
  readonly kind = 'sam2' as const;
  readonly imageEncoder: ImageEncoder;
  readonly promptEncoder: PromptEncoder;
  readonly maskDecoder: MaskDecoder;
  /** The video components, when the weights have them. */
  readonly video?: { memoryEncoder: MemoryEncoder; memoryAttention: MemoryAttention; params: TrackingParams };
  /** What runs the image encoder (and the prompt decoder): TF.js unless loadSam2 chose ONNX Runtime. */
  executor: Sam2Executor = new TfjsExecutor(this);

  /**
   * Builds every component for `config` and loads `weights` into it (the video components
   * only when the weights have them). Every key must be consumed and every parameter found,
   * or a WEIGHTS error names the offenders. The model keeps its own references: the caller may
   * dispose `weights` afterwards.
   */
  constructor(
    readonly config: Sam2Config,
    weights: Weights,
  ) {
    this.imageEncoder = new ImageEncoder(config);
    this.promptEncoder = new PromptEncoder(config);
    this.maskDecoder = new MaskDecoder(config);
    if (weights.keys().some((k) => VIDEO_KEY.test(k))) {
      this.video = {
        memoryEncoder: new MemoryEncoder(config),
        memoryAttention: new MemoryAttention(config),
        params: new TrackingParams(config),
      };
    }
    weights.checkKeys(this.paramKeys(), config.name);
    for (const c of this.components()) c.loadFrom(weights);
  }

  private components() {
    const v = this.video;
    return [
      this.imageEncoder,
      this.promptEncoder,
      this.maskDecoder,
      ...(v ? [v.memoryEncoder, v.memoryAttention, v.params] : []),
    ];
  }

  /** Prompt encoder + mask decoder on one image (see model/sam_heads.ts); the caller disposes the result. */
  forwardSamHeads(input: SamHeadsInput): MaskDecoderOutput {
    return forwardSamHeads(this, input);
  }

  /** The tracker for video prediction; a STATE error for image-only weights. */
  tracker(): Tracker {
    if (!this.video) {
      throw new Sam2Error(
        'STATE',
        'These weights have no memory encoder/attention (image-only): port a full SAM 2 checkpoint to track videos.',
      );
    }
    return new Tracker(this, this.video.params, this.video.memoryEncoder, this.video.memoryAttention);
  }

  /** Every PyTorch key the model loads. */
  paramKeys(): string[] {
    return this.components().flatMap((c) => c.paramKeys());
  }

  /** Number of parameters. */
  countParams(): number {
    return this.components().reduce((n, c) => n + c.countParams(), 0);
  }

  /** Frees every tensor the model holds. */
  dispose(): void {
    this.executor.dispose();
    for (const c of this.components()) c.disposeAll();
  }
}
