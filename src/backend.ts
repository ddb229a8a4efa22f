/**
 * Backend selection. tfjs-node-gpu (CUDA) and tfjs-node are optional peer dependencies that
 * cannot be installed everywhere (their install script downloads libtensorflow), so they are
 * looked up at run time; the wasm backend ships inside its npm package and works offline.
 */
import * as tf from '@tensorflow/tfjs';
import * as path from 'path';
import { Sam2Error } from './errors';
import { executorInfo, type ExecutorInfo } from './executor';
import { setWasmBackend, type WasmThreads } from './wasm_threads';

/** What the user may ask for. `auto` tries node-gpu, node, wasm, cpu in that order. */
export type BackendChoice = 'auto' | 'node-gpu' | 'node' | 'wasm' | 'cpu';

export interface BackendInfo {
  /** The choice that was satisfied (never `auto`). */
  choice: Exclude<BackendChoice, 'auto'>;
  /** tf.js's own backend name (`tensorflow`, `wasm`, `cpu`). */
  tfBackend: string;
  /** Why earlier candidates were skipped, for `info` and debugging. */
  skipped: string[];
  tfjsVersion: string;
  /** The executor (tfjs or onnxruntime, provider, threads) of the last model loadSam2 loaded. */
  executor?: ExecutorInfo;
  /** wasm: threads XNNPACK runs on and, when 1, why (SAM2_TFJS_THREADS, one core, a failure). */
  wasmThreads?: WasmThreads;
}

/** Environment variable that forces a backend, e.g. `SAM2_TFJS_BACKEND=wasm`. */
export const BACKEND_ENV = 'SAM2_TFJS_BACKEND';

const ORDER: Exclude<BackendChoice, 'auto'>[] = ['node-gpu', 'node', 'wasm', 'cpu'];
let current: BackendInfo | undefined;
let pending: Promise<BackendInfo> | undefined;

function parseChoice(value: string | undefined): BackendChoice | undefined {
  if (value === undefined || value === '') return undefined;
  const v = value.toLowerCase();
  if (v === 'auto' || (ORDER as string[]).includes(v)) return v as BackendChoice;
  throw new Sam2Error(
    'BACKEND',
    `Unknown backend "${value}". Use one of: auto, ${ORDER.join(', ')} (option "backend" or ${BACKEND_ENV}).`,
  );
}

/** Directory holding the .wasm binaries of the installed @tensorflow/tfjs-backend-wasm. */
export function wasmDir(): string {
  return path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep;
}

let wasmThreads: WasmThreads | undefined;

async function tryBackend(choice: Exclude<BackendChoice, 'auto'>): Promise<string> {
  switch (choice) {
    case 'node-gpu':
    case 'node': {
      // Optional peers: requiring them registers the 'tensorflow' backend on our tf instance.
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- optional peer, resolved at run time
      require(choice === 'node-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node');
      if (!(await tf.setBackend('tensorflow'))) throw new Error('tensorflow backend did not initialise');
      return 'tensorflow';
    }
    case 'wasm': {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when chosen
      const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
      wasm.setWasmPaths(wasmDir());
      wasmThreads = await setWasmBackend(wasm); // threaded build when it can, see wasm_threads.ts
      return 'wasm';
    }
    case 'cpu':
      if (!(await tf.setBackend('cpu'))) throw new Error('cpu backend did not initialise');
      return 'cpu';
  }
}

async function select(choice: BackendChoice): Promise<BackendInfo> {
  const candidates = choice === 'auto' ? ORDER : [choice];
  const skipped: string[] = [];
  for (const c of candidates) {
    try {
      const tfBackend = await tryBackend(c);
      await tf.ready();
      const info: BackendInfo = { choice: c, tfBackend, skipped, tfjsVersion: tf.version.tfjs };
      if (tfBackend === 'wasm') info.wasmThreads = wasmThreads;
      return info;
    } catch (e) {
      skipped.push(`${c}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new Sam2Error('BACKEND', `No usable tf.js backend (${skipped.join('; ')}).`);
}

/**
 * Initialises the tf.js backend once and reports which one is in use.
 * Precedence: the `backend` argument, then SAM2_TFJS_BACKEND, then `auto`.
 */
export async function initBackend(backend?: BackendChoice): Promise<BackendInfo> {
  const wanted = backend ?? parseChoice(process.env[BACKEND_ENV]) ?? 'auto';
  parseChoice(wanted);
  if (current && (wanted === 'auto' || wanted === current.choice)) return current;
  if (pending && wanted === 'auto') return pending;
  pending = select(wanted);
  try {
    current = await pending;
  } finally {
    pending = undefined;
  }
  if (process.env.SAM2_TFJS_QUIET !== '1') {
    console.error(`sam2-tfjs: using tf.js backend "${current.tfBackend}" (${current.choice})`);
  }
  return current;
}

/** The backend chosen by the last initBackend call, if any. */
export function backendInfo(): BackendInfo | undefined {
  const executor = executorInfo();
  if (current && executor) current.executor = executor; // same object: callers may compare identity
  return current;
}
