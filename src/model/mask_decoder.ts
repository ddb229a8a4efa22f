/** MaskDecoder: two-way transformer and mask/IoU/object-score heads. PLACEHOLDER: being written. */
import type { Sam2Config } from './config';
import { Sam2Layer } from '../layers/base';

export class MaskDecoder extends Sam2Layer {
  static className = 'Sam2MaskDecoder';
  constructor(readonly config: Sam2Config) {
    super();
  }
}
