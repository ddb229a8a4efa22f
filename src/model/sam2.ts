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

export class Sam2Model {
  readonly imageEncoder: ImageEncoder;
  readonly promptEncoder: PromptEncoder;
  readonly maskDecoder: MaskDecoder;
  readonly memoryEncoder: MemoryEncoder;
  readonly memoryAttention: MemoryAttention;
  readonly tracking: TrackingParams;

  /**
   * Builds every component for `config` and loads `weights` into it. Every key of `weights`
   * must be consumed and every parameter found, or a WEIGHTS error names the offenders.
   * The model keeps its own references: the caller may dispose `weights` afterwards.
   */
  constructor(readonly config: Sam2Config, weights: Weights) {
    this.imageEncoder = new ImageEncoder(config);
    this.promptEncoder = new PromptEncoder(config);
    this.maskDecoder = new MaskDecoder(config);
    this.memoryEncoder = new MemoryEncoder(config);
    this.memoryAttention = new MemoryAttention(config);
    this.tracking = new TrackingParams(config);
    const wanted = new Set(this.paramKeys());
    const unexpected = weights.keys().filter((k) => !wanted.has(k));
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

  private components() {
    return [this.imageEncoder, this.promptEncoder, this.maskDecoder, this.memoryEncoder, this.memoryAttention, this.tracking];
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
