/** MemoryEncoder: mask + pixel features to a 64-channel memory. PLACEHOLDER: being written. */
import type { Sam2Config } from './config';
import { Sam2Layer } from '../layers/base';

export class MemoryEncoder extends Sam2Layer {
  static className = 'Sam2MemoryEncoder';
  constructor(readonly config: Sam2Config) {
    super();
  }
}
