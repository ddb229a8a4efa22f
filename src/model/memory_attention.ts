/** MemoryAttention: RoPE self/cross attention of the current frame to the memory bank. PLACEHOLDER: being written. */
import type { Sam2Config } from './config';
import { Sam2Layer } from '../layers/base';

export class MemoryAttention extends Sam2Layer {
  static className = 'Sam2MemoryAttention';
  constructor(readonly config: Sam2Config) {
    super();
  }
}
