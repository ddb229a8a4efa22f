/** ImageEncoder: Hiera trunk + FPN neck + the image-predictor features (conv_s0/s1, no_mem_embed). PLACEHOLDER: being written. */
import type { Sam2Config } from './config';
import { Sam2Layer } from '../layers/base';

export class ImageEncoder extends Sam2Layer {
  static className = 'Sam2ImageEncoder';
  constructor(readonly config: Sam2Config) {
    super();
  }
}
