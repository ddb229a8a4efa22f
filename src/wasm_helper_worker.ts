/**
 * The worker side of WasmHelperThread (src/wasm_helper.ts): waits for a task on the shared
 * control block, claims it unless the main thread already did, runs it on the shared heap and
 * reports it done.
 */
import { workerData } from 'worker_threads';
import { geluRange } from './ops/gelu';
import { SLOT } from './wasm_helper';

const { memory, ctrl } = workerData as { memory: WebAssembly.Memory; ctrl: SharedArrayBuffer };
const c = new Int32Array(ctrl);

let seen = 0;
for (;;) {
  // a timeout, so termination is never stuck behind an endless wait
  Atomics.wait(c, SLOT.SEQ, seen, 1000);
  const s = Atomics.load(c, SLOT.SEQ);
  if (s === seen) continue;
  seen = s;
  if (Atomics.compareExchange(c, SLOT.CLAIM, s - 1, s) !== s - 1) continue; // the main thread took it
  // memory.buffer covers the heap as it is now (it may have grown since the last task)
  const heap = memory.buffer;
  const n = c[SLOT.TO];
  const x = new Float32Array(heap, c[SLOT.X] * 4, n);
  const out = new Float32Array(heap, c[SLOT.OUT] * 4, n);
  geluRange(x, out, c[SLOT.FROM], n);
  Atomics.store(c, SLOT.DONE, s);
  Atomics.notify(c, SLOT.DONE);
}
