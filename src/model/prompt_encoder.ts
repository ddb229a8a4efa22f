/** PromptEncoder: points, boxes and mask prompts to sparse and dense embeddings. PLACEHOLDER: being written. */
import type { Sam2Config } from './config';
import { Sam2Layer } from '../layers/base';

export class PromptEncoder extends Sam2Layer {
  static className = 'Sam2PromptEncoder';
  constructor(readonly config: Sam2Config) {
    super();
  }
}
