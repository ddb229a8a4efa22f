/**
 * Both cores on the wasm backend in Node. @tensorflow/tfjs-backend-wasm ships a threaded SIMD
 * build (XNNPACK on a pthread pool) but never uses it in Node: its multithread flag is false
 * there, it hands Emscripten a `blob:` URL for the pthread worker (Node's Worker rejects it),
 * and the C++ side caps the pool at half the logical cores (tfjs issues 3830, 6081). This module
 * registers the `wasm` backend with that build instead: the worker script written to a real
 * file, the unbundled factory as the workers' main script, and the core count it sees doubled
 * so the pool gets the threads we ask for. Outputs are bit-identical to the stock build
 * (PERF-NOTES "Both cores on wasm in Node"); measured on 2 cores: matMul 1.9x, Hiera-T encode
 * 1.35x, memory attention 2.2x faster.
 *
 * Anything unexpected falls back to the stock single-threaded backend with a one-line reason.
 *
 * Both builds also get a heap guard: tfjs does not check `_malloc`, so when the 4 GB heap is
 * full it writes the new tensor at address 0, over the C stack, the allocator and the pthread
 * pool's state. What follows is arbitrary: aborts, "table index is out of bounds", or (seen
 * once in the whole test suite, right after the SAM 1 ViT-H test had filled the heap) the main
 * thread spinning forever on an idle pool. The guard throws a Sam2Error instead.
 */
import * as tf from '@tensorflow/tfjs';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vm from 'vm';
import { isMainThread } from 'worker_threads';
import { Sam2Error } from './errors';
import { setParallelUpsample } from './ops/mask_upsample';
import { WasmHelperThread } from './wasm_helper';
import { setKernelHelper } from './wasm_kernels';

/** `SAM2_TFJS_THREADS=N`: N threads (at most 8); 0 or 1 keep the stock build; unset: every core (at most 8). */
export const THREADS_ENV = 'SAM2_TFJS_THREADS';

/** Emscripten pre-spawns this many pthread workers (PTHREAD_POOL_SIZE of the build). */
const POOL_SIZE = 8;

export interface WasmThreads {
  /** Threads XNNPACK runs on (1 = the stock build). */
  threads: number;
  /** Why the stock build is in use, when it is. */
  reason?: string;
}

type WasmPackage = typeof import('@tensorflow/tfjs-backend-wasm');

interface EmscriptenModule {
  _malloc: (bytes: number) => number;
  asm?: { malloc?: unknown };
  cwrap: (name: string, ret: string | null, args: string[]) => (...a: number[]) => number;
  wasmMemory?: WebAssembly.Memory;
  tfjs?: unknown;
  PThread?: {
    runningWorkers: { unref?: () => void }[];
    unusedWorkers: { unref?: () => void }[];
    terminateAllThreads?: () => void;
  };
}

/** How many threads to ask for: the env var, else every core; 1 means the stock build. */
function wantedThreads(): { n: number; reason?: string } {
  const raw = process.env[THREADS_ENV];
  if (raw !== undefined && raw !== '') {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0) return { n: 1, reason: `${THREADS_ENV}="${raw}" is not a thread count` };
    if (n <= 1) return { n: 1, reason: `${THREADS_ENV}=${raw}` };
    return { n: Math.min(n, POOL_SIZE) };
  }
  const n = availableThreads();
  return n > 1 ? { n } : { n: 1, reason: 'one core' };
}

/** Threads the threaded build would use on this machine (every core, at most the pool size). */
export function availableThreads(): number {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.min(cores, POOL_SIZE);
}

/** The files of the threaded build inside the installed package. */
function threadedFiles(): { factory: string; wasm: string; workerContents: string } {
  const root = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  const factory = path.join(root, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js');
  const wasm = path.join(root, 'dist', 'tfjs-backend-wasm-threaded-simd.wasm');
  const workerModule = path.join(root, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.worker.js');
  for (const f of [factory, wasm, workerModule])
    if (!fs.existsSync(f)) throw new Error(`${path.basename(f)} is missing from the package`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a file of the installed package, found at run time
  const workerContents = (require(workerModule) as { wasmWorkerContents?: unknown }).wasmWorkerContents;
  if (typeof workerContents !== 'string') throw new Error('the threaded build has no worker script');
  // the string export turned the script's "\n" escapes into newlines: put them back, as tfjs does
  return { factory, wasm, workerContents: workerContents.replace(/\n/g, '\\n') };
}

/**
 * Writes the pthread worker script to a file Node's Worker can start (`.cjs`: it uses
 * `require`). A worker that fails to load kills the process (Emscripten turns its error into an
 * abort) rather than rejecting, so the file is read back and compiled here first.
 */
function writeWorkerFile(contents: string): string {
  const hash = crypto.createHash('sha256').update(contents).digest('hex').slice(0, 16);
  const file = path.join(os.tmpdir(), `sam2-tfjs-wasm-pthread-${hash}.cjs`);
  let current: string | undefined;
  try {
    current = fs.readFileSync(file, 'utf8');
  } catch {
    current = undefined;
  }
  if (current !== contents) {
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, contents);
    fs.renameSync(tmp, file); // atomic: a concurrent process never sees half a file
    current = fs.readFileSync(file, 'utf8');
  }
  if (current !== contents) throw new Error(`could not write the pthread worker to ${file}`);
  new vm.Script(current, { filename: file }); // throws on a syntax error
  return file;
}

/** Emscripten's heap limit in both builds (getHeapMax: 4 GB less one 64 KB page). */
const HEAP_MAX = 2 ** 32 - 2 ** 16;

/**
 * Makes `_malloc` throw a Sam2Error when the heap is full instead of returning a block tfjs
 * cannot use: 0, which tfjs (BackendWasm.write) takes as the tensor's address, or, in the last
 * megabytes below 4 GB, a block whose end wraps past 2^32 (seen: 1 MB at 4294046856), which
 * kernels would write over the bottom of the heap (that block is not freed: freeing writes past
 * its end too). Calls the wasm export (`asm.malloc`) directly: Emscripten's lazy `_malloc`
 * replaces itself with the export on its first call, which would drop the guard. Idempotent;
 * returns whether the module is guarded.
 */
export function guardWasmHeap(module: { _malloc: (bytes: number) => number; asm?: { malloc?: unknown } }): boolean {
  const malloc = module.asm?.malloc as ((bytes: number) => number) | undefined;
  if (typeof malloc !== 'function') return false;
  if ((module._malloc as { sam2Guard?: true }).sam2Guard) return true;
  const guarded = (bytes: number) => {
    const ptr = malloc(bytes);
    if (bytes > 0 && (ptr === 0 || (ptr >>> 0) + bytes > HEAP_MAX)) {
      throw new Sam2Error(
        'MEMORY',
        `The wasm heap is full (4 GB): no room for a ${(bytes / 2 ** 20).toFixed(1)} MB tensor. Dispose models, predictors and video states you no longer need, or use a smaller model or image size.`,
      );
    }
    return ptr;
  };
  module._malloc = Object.assign(guarded, { sam2Guard: true as const });
  return true;
}

/** The last XNNPACK failure the wasm side printed, not yet reported. */
let xnnFailure: string | undefined;

/**
 * The threaded module's stderr. tfjs's C++ kernels only print when an XNNPACK call fails (e.g.
 * out of memory while packing a weight) and then return garbage: keep the line for checkKernels.
 */
function onPrintErr(text: string): void {
  if (/XNN status/.test(text)) xnnFailure = text;
  else process.stderr.write(`${text}\n`);
}

/**
 * Wraps the module's cwrap (BackendWasm's kernels get their wasm functions from it when tf.js
 * sets them up) so a kernel during which XNNPACK failed throws instead of returning garbage.
 */
function checkKernels(module: EmscriptenModule): void {
  const cwrap = module.cwrap;
  module.cwrap = (name, ret, args) => {
    const f = cwrap(name, ret, args);
    return (...a: number[]) => {
      const r = f(...a);
      if (xnnFailure !== undefined) {
        const line = xnnFailure.split('. Use')[0];
        xnnFailure = undefined;
        throw / status 6\b/.test(line)
          ? new Sam2Error(
              'MEMORY',
              `The wasm heap is full (4 GB): XNNPACK ran out of memory in ${name}. Dispose models, predictors and video states you no longer need, or use a smaller model or image size.`,
            )
          : new Sam2Error('BACKEND', `The wasm kernel ${name} failed (${line}).`);
      }
      return r;
    };
  };
}

/** Guards the heap of the initialised `wasm` backend (either build). */
function guardBackend(): void {
  const module = (tf.findBackend('wasm') as unknown as { wasm?: EmscriptenModule } | null)?.wasm;
  if (module && typeof module._malloc === 'function') guardWasmHeap(module);
}

/** Lets the process exit while the pool threads idle (they wait on Atomics forever). */
function unrefPool(module: EmscriptenModule): void {
  const p = module.PThread;
  if (!p) throw new Error('the threaded build has no PThread pool');
  for (const w of [...p.runningWorkers, ...p.unusedWorkers]) w.unref?.();
}

/**
 * Registers the threaded build as the `wasm` backend (before tf.js initialises it), then
 * initialises it; on any failure, restores the stock build. Call instead of
 * `tf.setBackend('wasm')`. Returns the thread count in use and, for one thread, why.
 */
export async function setWasmBackend(wasmPackage: WasmPackage): Promise<WasmThreads> {
  const stock = tf.engine().registryFactory.wasm;
  const setStock = async (reason: string): Promise<WasmThreads> => {
    if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend did not initialise');
    guardBackend();
    return { threads: 1, reason };
  };
  const { n, reason } = wantedThreads();
  if (reason) return setStock(reason);
  // Memory-attention workers start their own wasm backend: one thread each.
  if (!isMainThread) return setStock('worker thread');
  if (!stock) return setStock('the wasm backend is not registered');
  if (tf.engine().registry.wasm) {
    // already initialised (an earlier call): keep whichever build it is
    if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend did not initialise');
    guardBackend();
    const threads = wasmPackage.getThreadsCount();
    return threads > 1 ? { threads } : { threads, reason: 'the wasm backend was initialised before' };
  }
  if (typeof SharedArrayBuffer === 'undefined') return setStock('no SharedArrayBuffer');

  let files: ReturnType<typeof threadedFiles>;
  let workerFile: string;
  try {
    files = threadedFiles();
    workerFile = writeWorkerFile(files.workerContents);
  } catch (e) {
    return setStock((e as Error).message.split('\n')[0]);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the unbundled Emscripten factory, found at run time
  const emscriptenFactory = require(files.factory) as (cfg: object) => Promise<EmscriptenModule>;
  let started: EmscriptenModule | undefined;
  const factory = async () => {
    const wasmBytes = fs.readFileSync(files.wasm);
    // Emscripten waits forever if instantiateWasm never calls back: a failure rejects this instead
    let failed: (e: Error) => void = () => undefined;
    const instantiationFailed = new Promise<never>((_, reject) => (failed = reject));
    const starting = emscriptenFactory({
      printErr: onPrintErr,
      mainScriptUrlOrBlob: files.factory, // the workers importScripts() it, then call the factory
      locateFile: (p: string) => (p.endsWith('.worker.js') ? workerFile : p.endsWith('.wasm') ? files.wasm : p),
      instantiateWasm: (
        imports: { env: Record<string, unknown> },
        done: (i: WebAssembly.Instance, m: WebAssembly.Module) => void,
      ) => {
        // the C++ side sizes the pool as half the logical cores: report twice what we want
        imports.env.emscripten_num_logical_cores = () => 2 * n;
        WebAssembly.instantiate(wasmBytes, imports as WebAssembly.Imports).then(
          (r) => done(r.instance, r.module),
          (e: Error) => failed(e),
        );
        return {};
      },
    });
    const module = await Promise.race([starting, instantiationFailed]);
    started = module;
    unrefPool(module);
    guardWasmHeap(module);
    checkKernels(module);
    // what the stock init() attaches (backend_wasm.js), needed by BackendWasm
    module.tfjs = {
      init: module.cwrap('init', null, []),
      initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
      getThreadsCount: module.cwrap('get_threads_count', 'number', []),
      registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
      disposeData: module.cwrap('dispose_data', null, ['number']),
      dispose: module.cwrap('dispose', null, []),
    };
    const backend = new wasmPackage.BackendWasm(module as never);
    unrefPool(module); // XNNPACK's pool threads started in the constructor
    return backend;
  };
  wasmPackage.setThreadsCount(n);
  tf.removeBackend('wasm');
  tf.registerBackend('wasm', factory, stock.priority);
  let ok = false;
  let why = 'the threaded build did not initialise';
  try {
    ok = await tf.setBackend('wasm');
  } catch (e) {
    why = (e as Error).message.split('\n')[0];
  }
  if (ok) {
    const threads = wasmPackage.getThreadsCount();
    if (threads <= 1) return { threads, reason: 'the threaded build started one thread' };
    // what runs outside XNNPACK (GELU, LayerNorm, batched matMuls, mask upsampling) gets a
    // second thread too
    const helper = started?.wasmMemory && WasmHelperThread.start(started.wasmMemory);
    setKernelHelper(helper || undefined);
    setParallelUpsample(
      helper ? (logits, count, plan, masks) => helper.upsample(logits, count, plan, masks) : undefined,
    );
    return { threads };
  }
  started?.PThread?.terminateAllThreads?.();
  tf.removeBackend('wasm');
  tf.registerBackend('wasm', stock.factory, stock.priority);
  wasmPackage.setThreadsCount(-1);
  return setStock(why);
}
