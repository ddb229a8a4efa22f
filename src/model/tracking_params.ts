/** TrackingParams: SAM2Base's own parameters (memory temporal encodings, object pointers, no-object embeddings). PLACEHOLDER: being written. */
import type { Sam2Config } from './config';
import { Sam2Layer } from '../layers/base';

export class TrackingParams extends Sam2Layer {
  static className = 'Sam2TrackingParams';
  constructor(readonly config: Sam2Config) {
    super();
  }
}
