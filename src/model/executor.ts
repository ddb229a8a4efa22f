/**
 * The executor interface SamPredictor talks to, and the TF.js executor (the default). The ONNX
 * Runtime one is in onnx/ort_executor.ts; src/executor.ts has the choice and what is reported.
 */
import * as tf from '@tensorflow/tfjs';
import type { ExecutorInfo } from '../executor';
import type { ImageFeatures, ImageEncoder } from './image_encoder';

/** The prompt decoder's outputs, as SamPredictor's TF.js path returns them. */
export interface DecodedPrompts {
  /** [B, s, s, M] low-res logits. */
  lowResMasks: tf.Tensor4D;
  /** [B, M]. */
  ious: tf.Tensor2D;
  /** [B, 1]. */
  objectScoreLogits: tf.Tensor2D;
}

export interface DecodeRequest {
  /** The predictor's cached features (batch of images) and the image to decode on. */
  features: ImageFeatures;
  imageIndex: number;
  /** [B, N, 2] model-input pixels and [B, N] labels (box corners as labels 2/3). */
  coords: tf.Tensor3D;
  labels: tf.Tensor2D;
  maskInput?: tf.Tensor4D;
  multimaskOutput: boolean;
}

export interface Sam2Executor {
  readonly info: ExecutorInfo;
  /** Image features of a preprocessed batch [B, S, S, 3] (new tensors: the caller disposes them). */
  imageFeatures(x: tf.Tensor4D): Promise<ImageFeatures>;
  /**
   * Decodes prompt sets; `undefined` when this executor leaves the request to the TF.js decoder
   * (the TF.js executor always does). New tensors: the caller disposes them.
   */
  decode?(request: DecodeRequest): Promise<DecodedPrompts | undefined>;
  /**
   * A video frame's levels as ImageEncoder.forwardImage gives them (conv_s0, conv_s1, top level
   * without the no-memory embedding) for one preprocessed frame [1, S, S, 3]; absent when the
   * TF.js encoder does it. New tensors: the caller disposes them.
   */
  frameFeatures?(x: tf.Tensor4D): Promise<{ highRes: [tf.Tensor4D, tf.Tensor4D]; top: tf.Tensor4D }>;
  /**
   * Memory attention (MemoryAttention.forwardBank after prepareBank): x [N, d], each layer's
   * bank keys [d, M], the bank's values [M, memDim] -> [N, d]; absent when TF.js does it.
   */
  attendMemory?(x: tf.Tensor2D, keysT: tf.Tensor2D[], values: tf.Tensor2D): Promise<tf.Tensor2D>;
  /**
   * Memory encoder (MemoryEncoder.forward's features): pixFeat [1, s, s, d], mask [1, 16s, 16s,
   * 1] already scaled -> [1, s, s, memDim]; absent when TF.js does it.
   */
  encodeMemory?(pixFeat: tf.Tensor4D, mask: tf.Tensor4D): Promise<tf.Tensor4D>;
  /** Frees what the executor holds (sessions, cached features). */
  dispose(): void;
}

/** The default executor: the TF.js layers themselves. */
export class TfjsExecutor implements Sam2Executor {
  constructor(
    private readonly model: { imageEncoder: ImageEncoder },
    private readonly fallback?: string[],
  ) {}

  /** Reads the tf.js backend when asked: a model may be built before the backend is chosen. */
  get info(): ExecutorInfo {
    return {
      executor: 'tfjs',
      provider: tf.getBackend() ?? 'unset',
      fallback: this.fallback?.length ? this.fallback : undefined,
    };
  }

  async imageFeatures(x: tf.Tensor4D): Promise<ImageFeatures> {
    return this.model.imageEncoder.imageFeatures(x);
  }

  dispose(): void {}
}
