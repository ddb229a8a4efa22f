/**
 * Browser stand-in for model/memory_attention_parallel.ts: the worker-thread split is a Node
 * wasm speed-up (worker_threads); in browsers memory attention runs in the page's backend.
 */
import type { MemoryAttention, PointerTokens, SpatialMemory } from '../model/memory_attention';
import type * as tf from '@tensorflow/tfjs';

export function parallelMemoryAttentionAvailable(): boolean {
  return false;
}

export class ParallelMemoryAttention {
  constructor(readonly memoryAttention: MemoryAttention) {}
  async forwardBank(
    _curr: tf.Tensor,
    _currPos: tf.Tensor,
    _spatial: SpatialMemory[],
    _pointers: PointerTokens | undefined,
  ): Promise<tf.Tensor> {
    throw new Error('ParallelMemoryAttention is not available in browsers');
  }
  async dispose(): Promise<void> {}
}
