/** loadSam2: from a ported weights folder (or URL) to a ready model (SAM 2 or SAM 1) on the chosen backend. */
import { initBackend, type BackendChoice } from './backend';
import { Sam2Error } from './errors';
import { isSam1Config } from './config_sam1';
import {
  parseExecutorChoice,
  resolveExecutorChoice,
  setExecutorInfo,
  EXECUTOR_ENV,
  type ExecutorOptions,
} from './executor';
import { TfjsExecutor, type Sam2Executor } from './model/executor';
import { readPortedWeights } from './io/ported';
import { Sam2Model } from './model/sam2';
import { Sam1Model } from './model/sam1/sam1';
import type { SamModel } from './model/sam_model';

export interface LoadSam2Options extends ExecutorOptions {
  /** Input resolution (multiple of 32); defaults to the ported config's (1024). */
  imageSize?: number;
  /** tf.js backend to initialise first; defaults to SAM2_TFJS_BACKEND or auto. */
  backend?: BackendChoice;
}

/**
 * Loads a model ported by `sam2-tfjs port` / `download` (a folder with model.json and .bin
 * shards, or its http(s) URL): a Sam2Model, or a Sam1Model for SAM 1 checkpoints (check
 * `model.kind`). SamPredictor and AutomaticMaskGenerator accept both.
 * @example
 * const model = await loadSam2('weights/sam2.1_hiera_tiny');
 * const predictor = new SamPredictor(model);
 * // ONNX Runtime (optional peer onnxruntime-node) for the encoder and prompt decoder:
 * const fast = await loadSam2('weights/sam2.1_hiera_tiny', { executor: 'auto' });
 */
export async function loadSam2(dirOrUrl: string, options: LoadSam2Options = {}): Promise<SamModel> {
  await initBackend(options.backend);
  const { config, weights } = await readPortedWeights(dirOrUrl, { imageSize: options.imageSize });
  let model: Sam2Model;
  try {
    if (isSam1Config(config)) {
      // SAM 1 runs on TF.js only (the ONNX graphs are built from the SAM 2 layers)
      if ((options.executor ?? 'tfjs') !== 'tfjs') {
        throw new Sam2Error(
          'CONFIG',
          `${config.name} (SAM 1) runs on the TF.js executor only; drop the executor option.`,
        );
      }
      return new Sam1Model(config, weights);
    }
    model = new Sam2Model(config, weights);
  } finally {
    weights.dispose(); // the model's variables hold their own references
  }
  try {
    model.executor = await createExecutor(model, dirOrUrl, options);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * Builds the executor for a loaded model. ONNX Runtime's modules (and the graph builder) are
 * required only when it is chosen, so TF.js users load none of them.
 */
export async function createExecutor(
  model: Sam2Model,
  weightsDir: string | undefined,
  options: ExecutorOptions = {},
): Promise<Sam2Executor> {
  const env = typeof process === 'undefined' ? undefined : process.env?.[EXECUTOR_ENV]; // no process in browsers
  const choice = options.executor ?? parseExecutorChoice(env) ?? 'tfjs';
  parseExecutorChoice(choice);
  const resolved = resolveExecutorChoice(choice);
  let executor: Sam2Executor;
  if (resolved.executor === 'onnxruntime') {
    // required here, not imported: TF.js users never load the graph builder or onnxruntime-node
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when chosen
    const { onnxGraphsFor } = require('./onnx/graphs') as typeof import('./onnx/graphs');
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when chosen
    const { OrtExecutor } = require('./onnx/ort_executor') as typeof import('./onnx/ort_executor');
    const graphs = onnxGraphsFor(model, weightsDir, options.onnxCacheDir);
    executor = await OrtExecutor.create(model, graphs, options);
  } else {
    executor = new TfjsExecutor(model, resolved.reason ? [resolved.reason] : undefined);
  }
  setExecutorInfo(executor.info);
  return executor;
}
