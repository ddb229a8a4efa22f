/**
 * Executors: what runs the model's heavy parts. TF.js (the default, and the definition of the
 * architecture) or ONNX Runtime for Node, an optional peer that runs graphs built from the same
 * layers and weights (src/onnx/) at native speed. SamPredictor asks the model's executor for
 * image features and, when it offers one, for a prompt decoder; everything else stays in TF.js.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Error } from './errors';
import type { ImageFeatures } from './model/image_encoder';
import type { Sam2Model } from './model/sam2';

/** What the user may ask for: `auto` uses ONNX Runtime when onnxruntime-node is installed. */
export type ExecutorChoice = 'tfjs' | 'onnxruntime' | 'auto';

/** Environment variable that picks the executor, e.g. `SAM2_TFJS_EXECUTOR=onnxruntime`. */
export const EXECUTOR_ENV = 'SAM2_TFJS_EXECUTOR';

/** ONNX Runtime execution providers we configure (CUDA falls back to CPU with a reason). */
export type ExecutionProvider = 'cpu' | 'cuda';

export interface ExecutorInfo {
  /** The executor in use (never `auto`). */
  executor: Exclude<ExecutorChoice, 'auto'>;
  /** ONNX Runtime's execution provider, or the tf.js backend name for `tfjs`. */
  provider: string;
  /** Intra-op threads (ONNX Runtime), when known. */
  threads?: number;
  /** Version of the executor's runtime. */
  version?: string;
  /** Why a requested executor or provider was not used. */
  fallback?: string[];
}

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
  /** Frees what the executor holds (sessions, cached features). */
  dispose(): void;
}

/** The default executor: the TF.js layers themselves. */
export class TfjsExecutor implements Sam2Executor {
  constructor(private readonly model: Sam2Model, private readonly fallback?: string[]) {}

  /** Reads the tf.js backend when asked: a model may be built before the backend is chosen. */
  get info(): ExecutorInfo {
    return { executor: 'tfjs', provider: tf.getBackend() ?? 'unset', fallback: this.fallback?.length ? this.fallback : undefined };
  }

  async imageFeatures(x: tf.Tensor4D): Promise<ImageFeatures> {
    return this.model.imageEncoder.imageFeatures(x);
  }

  dispose(): void {}
}

/** Parses an executor choice (option or environment), with a coded error for anything else. */
export function parseExecutorChoice(value: string | undefined): ExecutorChoice | undefined {
  if (value === undefined || value === '') return undefined;
  const v = value.toLowerCase();
  if (v === 'tfjs' || v === 'onnxruntime' || v === 'auto') return v;
  throw new Sam2Error('BACKEND', `Unknown executor "${value}". Use one of: tfjs, onnxruntime, auto (option "executor" or ${EXECUTOR_ENV}).`);
}

/** onnxruntime-node when it is installed and loads, else the reason it does not. */
export function tryLoadOnnxRuntime(): { ort?: unknown; reason?: string } {
  try {
    // optional peer: looked up at run time so TF.js users never need it (its types stay internal)
    return { ort: require('onnxruntime-node') as unknown };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { reason: err.code === 'MODULE_NOT_FOUND' ? 'onnxruntime-node is not installed' : `onnxruntime-node did not load: ${err.message.split('\n')[0]}` };
  }
}

/**
 * Resolves a choice to the executor to build: `auto` takes ONNX Runtime when `load` finds it,
 * `onnxruntime` fails with a BACKEND error when it is missing.
 */
export function resolveExecutorChoice(
  choice: ExecutorChoice,
  load: () => { ort?: unknown; reason?: string } = tryLoadOnnxRuntime,
): { executor: Exclude<ExecutorChoice, 'auto'>; reason?: string } {
  if (choice === 'tfjs') return { executor: 'tfjs' };
  const r = load();
  if (r.ort) return { executor: 'onnxruntime' };
  if (choice === 'onnxruntime') {
    throw new Sam2Error(
      'BACKEND',
      `executor "onnxruntime" was asked for but ${r.reason}. Install it (npm install onnxruntime-node; set ONNXRUNTIME_NODE_INSTALL=skip to skip its CUDA download) or use executor "tfjs".`,
    );
  }
  return { executor: 'tfjs', reason: `onnxruntime: ${r.reason}` };
}

let lastInfo: ExecutorInfo | undefined;

/** Records the executor of the last loaded model (reported by backendInfo() and `info`). */
export function setExecutorInfo(info: ExecutorInfo): void {
  lastInfo = info;
}

/** The executor of the last model loaded by loadSam2, if any. */
export function executorInfo(): ExecutorInfo | undefined {
  return lastInfo;
}

export interface ExecutorOptions {
  /** `tfjs` (default), `onnxruntime`, or `auto`; SAM2_TFJS_EXECUTOR when not given. */
  executor?: ExecutorChoice;
  /** ONNX Runtime execution provider: `cpu` (default) or `cuda` (falls back to cpu with a reason). */
  executionProvider?: ExecutionProvider;
  /** ONNX Runtime intra-op threads (default: the number of cores). */
  threads?: number;
  /** Where to cache the ONNX graphs (default `<weights dir>/onnx/<imageSize>`), or false for none. */
  onnxCacheDir?: string | false;
}

/**
 * Builds the executor for a loaded model. ONNX Runtime's modules (and the graph builder) are
 * required only when it is chosen, so TF.js users load none of them.
 */
export async function createExecutor(model: Sam2Model, weightsDir: string | undefined, options: ExecutorOptions = {}): Promise<Sam2Executor> {
  const choice = options.executor ?? parseExecutorChoice(process.env[EXECUTOR_ENV]) ?? 'tfjs';
  parseExecutorChoice(choice);
  const resolved = resolveExecutorChoice(choice);
  let executor: Sam2Executor;
  if (resolved.executor === 'onnxruntime') {
    const { onnxGraphsFor } = require('./onnx/graphs') as typeof import('./onnx/graphs');
    const { OrtExecutor } = require('./onnx/ort_executor') as typeof import('./onnx/ort_executor');
    const graphs = onnxGraphsFor(model, weightsDir, options.onnxCacheDir);
    executor = await OrtExecutor.create(model, graphs, options);
  } else {
    executor = new TfjsExecutor(model, resolved.reason ? [resolved.reason] : undefined);
  }
  setExecutorInfo(executor.info);
  return executor;
}
