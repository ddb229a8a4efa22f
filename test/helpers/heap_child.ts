/**
 * Run in a child process by test/integration/wasm_threads.test.ts: the conditions of the hang
 * the threaded build once showed in the whole suite. Fills the 4 GB wasm heap until the next
 * tensor does not fit (tfjs used to write it at address 0, corrupting the allocator and the
 * pthread pool: the main thread then spun forever), frees it all, then runs threaded matMuls and
 * a conv. On the way, a matMul whose output fits but whose packed weight (XNNPACK's own
 * allocation) does not. Prints one JSON line: the errors, and hashes of the results before and
 * after.
 */
import * as crypto from 'crypto';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend';

/** A matMul and a conv on fixed inputs, hashed. */
async function work(): Promise<string> {
  const out = tf.tidy(() => {
    const a = tf.tensor2d(
      Float32Array.from({ length: 512 * 512 }, (_, i) => Math.sin(i)),
      [512, 512],
    );
    const x = tf.tensor4d(
      Float32Array.from({ length: 64 * 64 * 16 }, (_, i) => Math.cos(i)),
      [1, 64, 64, 16],
    );
    const k = tf.tensor4d(
      Float32Array.from({ length: 9 * 16 * 16 }, (_, i) => Math.sin(3 * i)),
      [3, 3, 16, 16],
    );
    return [tf.matMul(a, a), tf.conv2d(x, k, 1, 'same')];
  });
  const hash = crypto.createHash('sha256');
  for (const t of out) hash.update(new Uint8Array(((await t.data()) as Float32Array).buffer));
  tf.dispose(out);
  return hash.digest('hex');
}

async function main() {
  const info = await initBackend('wasm');
  const before = await work();
  const heap = () => (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.byteLength;
  const x = tf.tensor2d(new Float32Array(8 * 1024).fill(1), [8, 1024]);
  const w = tf.tensor2d(new Float32Array(1024 * 1024).fill(1), [1024, 1024]);
  const held: tf.Tensor[] = [];
  let error: { name: string; code?: string; message: string } | undefined;
  // big blocks first, then small ones: the heap ends up full to the last megabyte
  for (const mb of [256, 16, 1]) {
    for (;;) {
      try {
        held.push(tf.fill([(mb * 2 ** 20) / 4], 1));
      } catch (e) {
        const { name, code, message } = e as { name: string; code?: string; message: string };
        error = { name, code, message };
        break;
      }
    }
  }
  const fullHeap = heap();
  // room for a matMul's output but not for the packed copy XNNPACK makes of a new weight
  held.pop()!.dispose();
  held.pop()!.dispose();
  let xnn: { name: string; code?: string; message: string } | undefined;
  try {
    tf.matMul(x, w).dispose();
  } catch (e) {
    const { name, code, message } = e as { name: string; code?: string; message: string };
    xnn = { name, code, message };
  }
  tf.dispose([x, w]);
  tf.dispose(held);
  const after = [await work(), await work()];
  console.log(
    JSON.stringify({
      wasmThreads: info.wasmThreads,
      error,
      xnn,
      fullHeapMb: fullHeap / 2 ** 20,
      before,
      after,
      tensors: tf.memory().numTensors,
    }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
