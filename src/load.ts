/** loadSam2: from a ported weights folder (or URL) to a ready model (SAM 2 or SAM 1) on the chosen backend. */
import { initBackend, type BackendChoice } from './backend';
import { isSam1Config } from './config_sam1';
import { readPortedWeights } from './io/ported';
import { Sam2Model } from './model/sam2';
import { Sam1Model } from './model/sam1/sam1';
import type { SamModel } from './model/sam_model';

export interface LoadSam2Options {
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
 */
export async function loadSam2(dirOrUrl: string, options: LoadSam2Options = {}): Promise<SamModel> {
  await initBackend(options.backend);
  const { config, weights } = await readPortedWeights(dirOrUrl, { imageSize: options.imageSize });
  try {
    return isSam1Config(config) ? new Sam1Model(config, weights) : new Sam2Model(config, weights);
  } finally {
    weights.dispose(); // the model's variables hold their own references
  }
}
