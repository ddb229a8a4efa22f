/**
 * Root hooks: selects the tf.js backend (wasm unless SAM2_TFJS_BACKEND says otherwise), prints
 * how long each top-level suite took, so CI logs show where the time goes, and frees the
 * memoized test models when a test file is done.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend';
import { releaseModels } from './models';
import { releaseSam1Models } from './sam1_models';

const started = new Map<string, number>();
const timings: [string, number][] = [];

/** Live tensor bytes and, on wasm, the heap's size: the heap only grows, so CI logs show which suite grew it. */
function memoryLine(): string {
  // The threaded build's HEAPU8 view goes stale when the heap grows; its Memory object does not.
  type Module = { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } };
  const wasm = (tf.backend() as { wasm?: Module }).wasm;
  const heap = (wasm?.wasmMemory ?? wasm?.asm?.memory)?.buffer.byteLength;
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;
  const m = tf.memory();
  return `${m.numTensors} tensors, ${mb(m.numBytes)}${heap ? `, wasm heap ${mb(heap)}` : ''}`;
}

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    process.env.SAM2_TFJS_QUIET = '1';
    const info = await initBackend((process.env.SAM2_TFJS_BACKEND as 'wasm') || 'wasm');
    console.log(`tf.js ${info.tfjsVersion}, backend ${info.tfBackend}`);
    const root = this.test?.parent;
    const suites = root?.suites ?? [];
    suites.forEach((suite, i) => {
      suite.beforeAll(() => started.set(suite.fullTitle(), Date.now()));
      suite.afterAll(() => {
        if (suites[i + 1]?.file !== suite.file) {
          releaseModels();
          releaseSam1Models();
        }
        const t = (Date.now() - (started.get(suite.fullTitle()) ?? Date.now())) / 1000;
        timings.push([suite.fullTitle(), t]);
        console.log(`    [timing] ${suite.fullTitle()}: ${t.toFixed(1)} s (${memoryLine()})`);
      });
    });
  },
  afterAll() {
    console.log('\nPer-suite timings (s):');
    for (const [name, t] of timings) console.log(`  ${t.toFixed(1).padStart(8)}  ${name}`);
    console.log(`  at exit: ${memoryLine()}`);
  },
};
