/**
 * The messages between the main thread (memory_attention_parallel.ts) and the memory-attention
 * worker thread (memory_attention_worker.ts). Arrays travel as transferred Float32Arrays.
 */
import type { Sam2Config } from '../config';
import type { GridRows } from '../layers/rope_attention';

/** Messages from the main thread. */
export type ToWorker =
  | { type: 'init'; config: Sam2Config; weights: [string, number[], Float32Array][] }
  | { type: 'bank'; keysT: Float32Array[]; numKeys: number; values: Float32Array }
  | { type: 'layer'; layer: number; x: Float32Array; rows: GridRows }
  | { type: 'release' };

/** Replies: 'ready' after init, 'rows' after a layer, 'error' for any failure. */
export type FromWorker = { type: 'ready' } | { type: 'rows'; data: Float32Array } | { type: 'error'; message: string };
