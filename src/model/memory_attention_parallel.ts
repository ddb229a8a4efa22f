/**
 * Memory attention on two cores. The wasm backend runs on one thread in Node, and memory
 * attention over 7 memory frames is the slowest part of tracking; its rows are independent
 * except through self-attention, so a worker thread with its own wasm backend computes part
 * of every layer's query rows while this thread computes the rest, and the halves are swapped
 * after each layer. Same operations per row as MemoryAttention.forwardBank.
 */
import * as tf from '@tensorflow/tfjs';
import * as os from 'os';
import * as path from 'path';
import { Worker } from 'worker_threads';
import { backendInfo } from '../backend';
import type { GridRows } from '../layers/rope_attention';
import { MemoryAttention, type PointerTokens, type SpatialMemory } from './memory_attention';
import type { FromWorker, ToWorker } from './memory_attention_messages';

/** Set to 0 to keep memory attention on one thread. */
export const WORKERS_ENV = 'SAM2_TFJS_WORKERS';

/**
 * Whether a worker thread can help: the wasm backend on one thread, more than one core, not
 * disabled. With the threaded wasm build (src/wasm_threads.ts) memory attention already runs
 * 2.2x faster on both cores; adding the worker makes 3 busy threads on 2 cores, which is slower.
 */
export function parallelMemoryAttentionAvailable(): boolean {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const threaded = (backendInfo()?.wasmThreads?.threads ?? 1) > 1;
  return tf.getBackend() === 'wasm' && !threaded && cores > 1 && process.env[WORKERS_ENV] !== '0';
}

/** Starts the worker; under tsx (tests, examples run from source) the worker loads tsx too. */
function startWorker(): Worker {
  const ext = path.extname(__filename);
  const entry = path.join(__dirname, `memory_attention_worker${ext}`);
  const tsx = ext === '.ts' ? `require(${JSON.stringify(require.resolve('tsx/cjs'))});` : '';
  const code = `${tsx}require(${JSON.stringify(entry)});`;
  return new Worker(code, { eval: true });
}

export class ParallelMemoryAttention {
  private readonly worker: Worker;
  private readonly ready: Promise<void>;
  private pending?: { resolve: (m: FromWorker) => void; reject: (e: Error) => void };
  /** Calls run one at a time: the worker holds one bank. */
  private queue: Promise<unknown> = Promise.resolve();
  private failed?: Error;

  constructor(readonly attention: MemoryAttention) {
    this.worker = startWorker();
    this.worker.unref(); // an idle worker must not keep the process alive
    this.worker.on('message', (m: FromWorker) => {
      const p = this.pending;
      this.pending = undefined;
      if (m.type === 'error') p?.reject(new Error(`memory-attention worker: ${m.message}`));
      else p?.resolve(m);
    });
    const fail = (e: Error) => {
      this.failed = e;
      this.pending?.reject(e);
      this.pending = undefined;
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`memory-attention worker exited (code ${code})`)));
    const weights: [string, number[], Float32Array][] = attention
      .paramKeys()
      .map((key, i) => [
        key,
        attention.nonTrainableWeights[i].shape as number[],
        attention.nonTrainableWeights[i].read().dataSync() as Float32Array,
      ]);
    this.ready = this.request({ type: 'init', config: attention.config, weights }).then(() => undefined);
  }

  /** Sends a message; resolves with the worker's reply (the worker answers one at a time). */
  private request(m: ToWorker, transfer: ArrayBuffer[] = []): Promise<FromWorker> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(m, transfer);
    });
  }

  private send(m: ToWorker, transfer: ArrayBuffer[] = []): void {
    if (this.failed) throw this.failed;
    this.worker.postMessage(m, transfer);
  }

  /** MemoryAttention.forwardBank, split over this thread and the worker. */
  forwardBank(
    curr: tf.Tensor2D,
    currPos: tf.Tensor2D,
    spatial: SpatialMemory[],
    pointers?: PointerTokens,
  ): Promise<tf.Tensor2D> {
    const run = this.queue.then(() => this.run(curr, currPos, spatial, pointers));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async run(
    curr: tf.Tensor2D,
    currPos: tf.Tensor2D,
    spatial: SpatialMemory[],
    pointers?: PointerTokens,
  ): Promise<tf.Tensor2D> {
    const att = this.attention;
    const { x, keysT, values } = att.prepareBank(curr, currPos, spatial, pointers);
    let h = x; // the current layer's output (a partial one if the worker fails)
    this.worker.ref(); // keep the process alive while waiting for the worker
    try {
      await this.ready;
      const keyData = keysT.map((k) => k.dataSync() as Float32Array);
      const valueData = values.dataSync() as Float32Array;
      this.send(
        { type: 'bank', keysT: keyData, numKeys: values.shape[0], values: valueData },
        [...keyData, valueData].map((a) => a.buffer as ArrayBuffer),
      );
      const n = x.shape[0];
      const mine: GridRows = { gridSize: n, start: 0, count: Math.ceil(n / 2) };
      const theirs: GridRows = { gridSize: n, start: mine.count, count: n - mine.count };
      for (let i = 0; i < att.layers.length; i++) {
        const xData = h.dataSync() as Float32Array;
        const reply = this.request({ type: 'layer', layer: i, x: xData, rows: theirs }, [xData.buffer as ArrayBuffer]);
        const top = att.layers[i].forward(h, keysT[i], values, mine); // runs while the worker works
        if (h !== x) h.dispose();
        h = top;
        const other = await reply;
        if (other.type !== 'rows') throw new Error('memory-attention worker: unexpected reply');
        h = tf.tidy(() => tf.concat([top, tf.tensor2d(other.data, [theirs.count, top.shape[1]])]) as tf.Tensor2D);
        top.dispose();
      }
      this.send({ type: 'release' });
      return att.norm.forward(h) as tf.Tensor2D;
    } finally {
      tf.dispose([x, h, ...keysT, values]); // h may be x: disposing twice is a no-op
      this.worker.unref();
    }
  }

  /** Stops the worker. */
  dispose(): Promise<number> {
    return this.worker.terminate();
  }
}
