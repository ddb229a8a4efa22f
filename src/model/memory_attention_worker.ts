/**
 * Entry of the memory-attention worker thread (see memory_attention_parallel.ts): its own tf.js
 * wasm backend and a copy of the memory-attention weights; computes its share of the query rows
 * of one layer at a time.
 */
import * as tf from '@tensorflow/tfjs';
import { parentPort } from 'worker_threads';
import { initBackend } from '../backend';
import { MemoryAttention } from './memory_attention';
import { Weights } from '../weights';
import type { FromWorker, ToWorker } from './memory_attention_messages';

let attention: MemoryAttention | undefined;
let bank: { keysT: tf.Tensor2D[]; values: tf.Tensor2D } | undefined;

function releaseBank(): void {
  if (bank) tf.dispose([...bank.keysT, bank.values]);
  bank = undefined;
}

async function handle(m: ToWorker): Promise<FromWorker | undefined> {
  switch (m.type) {
    case 'init': {
      process.env.SAM2_TFJS_QUIET = '1';
      await initBackend('wasm');
      const weights = new Weights(m.weights.map(([key, shape, data]) => [key, tf.tensor(data, shape)]));
      attention = new MemoryAttention(m.config);
      attention.loadFrom(weights);
      weights.dispose();
      return { type: 'ready' };
    }
    case 'bank': {
      if (!attention) throw new Error('memory-attention worker: bank before init');
      releaseBank();
      const { neck, memoryDim } = attention.config;
      bank = {
        keysT: m.keysT.map((k) => tf.tensor2d(k, [neck.dModel, m.numKeys])),
        values: tf.tensor2d(m.values, [m.numKeys, memoryDim]),
      };
      return undefined;
    }
    case 'layer': {
      if (!attention || !bank) throw new Error('memory-attention worker: layer before init/bank');
      const d = attention.config.neck.dModel;
      const data = tf.tidy(() => {
        const x = tf.tensor2d(m.x, [m.rows.gridSize, d]);
        return attention!.layers[m.layer]
          .forward(x, bank!.keysT[m.layer], bank!.values, m.rows)
          .dataSync() as Float32Array;
      });
      return { type: 'rows', data };
    }
    case 'release':
      releaseBank();
      return undefined;
  }
}

parentPort?.on('message', (m: ToWorker) => {
  handle(m).then(
    (reply) => reply && parentPort!.postMessage(reply, reply.type === 'rows' ? [reply.data.buffer as ArrayBuffer] : []),
    (e: Error) => parentPort!.postMessage({ type: 'error', message: e.message } satisfies FromWorker),
  );
});
