/** loadSam2: from a ported weights folder (or URL) to a ready Sam2Model on the chosen backend. */
import { initBackend, type BackendChoice } from './backend';
import { readPortedWeights } from './io/ported';
import { Sam2Model } from './model/sam2';

export interface LoadSam2Options {
  /** Input resolution (multiple of 32); defaults to the ported config's (1024). */
  imageSize?: number;
  /** tf.js backend to initialise first; defaults to SAM2_TFJS_BACKEND or auto. */
  backend?: BackendChoice;
}

/**
 * Loads a model ported by `sam2-tfjs port` / `download` (a folder with model.json and .bin
 * shards, or its http(s) URL).
 * @example
 * const model = await loadSam2('weights/sam2.1_hiera_tiny');
 * const predictor = new SamPredictor(model);
 */
export async function loadSam2(dirOrUrl: string, options: LoadSam2Options = {}): Promise<Sam2Model> {
  await initBackend(options.backend);
  const { config, weights } = await readPortedWeights(dirOrUrl, { imageSize: options.imageSize });
  try {
    return new Sam2Model(config, weights);
  } finally {
    weights.dispose(); // the model's variables hold their own references
  }
}
