/** The assembled SAM 2 model: every component built from one config and loaded from one set of weights. */
import * as tf from '@tensorflow/tfjs';
import { Sam2Error } from '../errors';
import type { Sam2Config } from './config';
import type { Weights } from './weights';
import { ImageEncoder } from './image_encoder';
import { PromptEncoder } from './prompt_encoder';
import { MaskDecoder } from './mask_decoder';
import { MemoryEncoder } from './memory_encoder';
import { MemoryAttention } from './memory_attention';
import { TrackingParams } from './tracking_params';

/** Parameters only the video predictor uses (memory, object pointers, temporal encodings). */
const VIDEO_KEY = /^(memory_encoder|memory_attention|obj_ptr_proj|obj_ptr_tpos_proj|mask_downsample)\.|^(maskmem_tpos_enc|no_mem_pos_enc|no_obj_ptr|no_obj_embed_spatial)$/;

export interface Sam2ModelOptions {
  /**
   * Build the memory encoder, memory attention and tracking parameters (default true).
   * Image-only models (SamPredictor, AutomaticMaskGenerator) skip them and their weights.
   */
  video?: boolean;
}

export class Sam2Model {
  readonly imageEncoder: ImageEncoder;
  readonly promptEncoder: PromptEncoder;
  readonly maskDecoder: MaskDecoder;
  private readonly video?: {
    memoryEncoder: MemoryEncoder;
    memoryAttention: MemoryAttention;
    tracking: TrackingParams;
  };

  /**
   * Builds every component for `config` and loads `weights` into it. Every key of `weights`
   * must be consumed and every parameter found, or a WEIGHTS error names the offenders.
   * The model keeps its own references: the caller may dispose `weights` afterwards.
   */
  constructor(readonly config: Sam2Config, weights: Weights, options: Sam2ModelOptions = {}) {
    this.imageEncoder = new ImageEncoder(config);
    this.promptEncoder = new PromptEncoder(config);
    this.maskDecoder = new MaskDecoder(config);
    if (options.video ?? true) {
      this.video = {
        memoryEncoder: new MemoryEncoder(config),
        memoryAttention: new MemoryAttention(config),
        tracking: new TrackingParams(config),
      };
    }
    const wanted = new Set(this.paramKeys());
    const skipped = (k: string) => !this.video && VIDEO_KEY.test(k);
    const unexpected = weights.keys().filter((k) => !wanted.has(k) && !skipped(k));
    const missing = [...wanted].filter((k) => !weights.has(k));
    if (missing.length || unexpected.length) {
      throw new Sam2Error(
        'WEIGHTS',
        `Weights do not match ${config.name}: ` +
          (missing.length ? `${missing.length} missing (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}) ` : '') +
          (unexpected.length
            ? `${unexpected.length} unexpected (${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ', ...' : ''})`
            : '') +
          '. Was the checkpoint ported for another model?',
      );
    }
    for (const c of this.components()) c.loadFrom(weights);
  }

  /** Whether the video components were built. */
  get hasVideo(): boolean {
    return this.video !== undefined;
  }

  private requireVideo() {
    if (!this.video) {
      throw new Sam2Error('STATE', 'This model was loaded image-only ({ video: false }); load it with video components to track videos.');
    }
    return this.video;
  }

  get memoryEncoder(): MemoryEncoder {
    return this.requireVideo().memoryEncoder;
  }

  get memoryAttention(): MemoryAttention {
    return this.requireVideo().memoryAttention;
  }

  get tracking(): TrackingParams {
    return this.requireVideo().tracking;
  }

  private components() {
    const v = this.video;
    return [this.imageEncoder, this.promptEncoder, this.maskDecoder, ...(v ? [v.memoryEncoder, v.memoryAttention, v.tracking] : [])];
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
    for (const c of this.components()) c.disposeAll();
  }

  /** tf.js memory figures, for leak checks. */
  static memory(): tf.MemoryInfo {
    return tf.memory();
  }
}
