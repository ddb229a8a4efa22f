/**
 * Backend selection in Node. tfjs-node-gpu (CUDA) and tfjs-node are optional peer dependencies
 * that cannot be installed everywhere (their install script downloads libtensorflow), so they are
 * looked up at run time, and only one of them is ever loaded (a second one registers every
 * kernel again, with a warning each); the wasm backend ships inside its npm package and works
 * offline. The selection rules themselves are in backend_core.ts.
 */
import * as tf from '@tensorflow/tfjs';
import * as path from 'path';
import {
  backendInfo as coreBackendInfo,
  initBackendOn,
  type BackendChoice,
  type BackendInfo,
  type Candidate,
  type Platform,
} from './backend_core';
import { executorInfo } from './executor';
import { setWasmBackend } from './wasm_threads';

export { BACKEND_ENV, smokeTest, type BackendChoice, type BackendInfo, type BackendName } from './backend_core';
import { BACKEND_ENV } from './backend_core';

const NODE_GPU = '@tensorflow/tfjs-node-gpu';
const NODE_CPU = '@tensorflow/tfjs-node';

/** What tfjs-node-gpu 4.x (TensorFlow 2.9 inside) needs to run on a GPU. */
export const CUDA_REQUIREMENT =
  'an NVIDIA driver >= 450 with CUDA 11.2 and cuDNN 8.1 (libcudart.so.11.0 and libcudnn.so.8 on the library path)';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- optional peers, resolved at run time
let load: (name: string) => unknown = (name) => require(name);
/** The tfjs-node package that registered the tensorflow backend in this process. */
let tensorflowPackage: string | undefined;

/** @internal Lets tests stand in fake tfjs-node modules (tfjs-node cannot be installed everywhere). */
export function setModuleLoaderForTests(loader: ((name: string) => unknown) | undefined): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- optional peers, resolved at run time
  load = loader ?? ((name) => require(name));
  tensorflowPackage = undefined;
}

/** Directory holding the .wasm binaries of the installed @tensorflow/tfjs-backend-wasm. */
export function wasmDir(): string {
  return path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep;
}

const firstLine = (e: unknown) => String((e as Error)?.message ?? e).split('\n')[0];
const isMissing = (e: unknown, name: string) =>
  (e as NodeJS.ErrnoException)?.code === 'MODULE_NOT_FOUND' && firstLine(e).includes(`'${name}'`);

/** Which package registered `tensorflow` when the user required it before us. */
function registeredBy(): string | undefined {
  const keys = Object.keys(require.cache ?? {});
  if (keys.some((k) => k.includes(`${path.sep}tfjs-node-gpu${path.sep}`))) return NODE_GPU;
  if (keys.some((k) => k.includes(`${path.sep}tfjs-node${path.sep}`))) return NODE_CPU;
  return undefined;
}

/** Loads one tfjs-node package, or reuses the tensorflow backend someone already registered. */
function loadTensorflow(wanted: 'node-gpu' | 'node' | 'tensorflow'): string | undefined {
  const want = wanted === 'node-gpu' ? NODE_GPU : wanted === 'node' ? NODE_CPU : undefined;
  if (!tensorflowPackage && tf.findBackendFactory('tensorflow')) tensorflowPackage = registeredBy() ?? 'tensorflow';
  if (tensorflowPackage) {
    if (want && tensorflowPackage !== want && tensorflowPackage !== 'tensorflow') {
      throw new Error(`${tensorflowPackage} is already loaded in this process; ${want} cannot be loaded beside it`);
    }
    return tensorflowPackage === 'tensorflow' ? undefined : tensorflowPackage;
  }
  const reasons: string[] = [];
  for (const name of want ? [want] : [NODE_GPU, NODE_CPU]) {
    try {
      load(name); // registers the 'tensorflow' backend on our tf instance
    } catch (e) {
      reasons.push(isMissing(e, name) ? `${name} is not installed` : `${name} failed to load: ${firstLine(e)}`);
      continue;
    }
    tensorflowPackage = name;
    return name;
  }
  throw new Error(reasons.join('; '));
}

function describe(tfBackend: string): Pick<BackendInfo, 'gpu' | 'device' | 'notes' | 'package'> {
  if (tfBackend === 'tensorflow') {
    const pkg = tensorflowPackage && tensorflowPackage !== 'tensorflow' ? tensorflowPackage : registeredBy();
    // tfjs-node(-gpu)'s backend asks TensorFlow whether it placed ops on a GPU device
    const gpu = (tf.findBackend('tensorflow') as { isUsingGpuDevice?: boolean } | null)?.isUsingGpuDevice === true;
    const notes =
      pkg === NODE_GPU && !gpu
        ? [`tfjs-node-gpu runs on the CPU: TensorFlow found no usable GPU; it needs ${CUDA_REQUIREMENT}.`]
        : [];
    return {
      gpu,
      device: `TensorFlow (${pkg?.replace('@tensorflow/', '') ?? 'tfjs-node'}) on ${gpu ? 'GPU' : 'CPU'}`,
      notes,
      package: pkg,
    };
  }
  if (tfBackend === 'webgl' || tfBackend === 'webgpu')
    return { gpu: true, device: tfBackend === 'webgl' ? 'WebGL' : 'WebGPU', notes: [] };
  return { gpu: false, device: tfBackend === 'wasm' ? 'WebAssembly on CPU' : 'JavaScript on CPU', notes: [] };
}

async function use(name: string): Promise<void> {
  if (!(await tf.setBackend(name))) throw new Error(`the ${name} backend did not initialise`);
}

function candidate(choice: Exclude<BackendChoice, 'auto'>): Candidate {
  switch (choice) {
    case 'tensorflow':
    case 'node-gpu':
    case 'node':
      return {
        choice,
        activate: async () => {
          const pkg = loadTensorflow(choice);
          await use('tensorflow');
          return { ...describe('tensorflow'), package: pkg ?? describe('tensorflow').package, tfBackend: 'tensorflow' };
        },
        // a GPU build whose CUDA/cuDNN does not match fails at the first op: say what it needs
        hint: () =>
          choice !== 'node' && tensorflowPackage === NODE_GPU ? `tfjs-node-gpu needs ${CUDA_REQUIREMENT}` : undefined,
      };
    case 'webgpu':
      return {
        choice,
        activate: async () => {
          if (typeof navigator === 'undefined' || !(navigator as { gpu?: unknown }).gpu)
            throw new Error('no WebGPU in this Node.js (navigator.gpu is missing)');
          try {
            load('@tensorflow/tfjs-backend-webgpu');
          } catch (e) {
            throw new Error(
              isMissing(e, '@tensorflow/tfjs-backend-webgpu')
                ? '@tensorflow/tfjs-backend-webgpu is not installed'
                : firstLine(e),
            );
          }
          await use('webgpu');
          return { ...describe('webgpu'), tfBackend: 'webgpu' };
        },
      };
    case 'webgl':
      return {
        choice,
        activate: async () => {
          // checked first so tf.js does not log its own initialisation failure
          if (typeof document === 'undefined' && typeof OffscreenCanvas === 'undefined')
            throw new Error('no WebGL in Node.js (no canvas)');
          await use('webgl');
          return { ...describe('webgl'), tfBackend: 'webgl' };
        },
      };
    case 'wasm':
      return {
        choice,
        activate: async () => {
          // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when chosen
          const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
          wasm.setWasmPaths(wasmDir());
          const wasmThreads = await setWasmBackend(wasm); // threaded build when it can, see wasm_threads.ts
          return { ...describe('wasm'), tfBackend: 'wasm', wasmThreads };
        },
      };
    case 'cpu':
      return {
        choice,
        activate: async () => {
          await use('cpu');
          return { ...describe('cpu'), tfBackend: 'cpu' };
        },
      };
  }
}

const nodePlatform: Platform = {
  choices: ['tensorflow', 'node-gpu', 'node', 'wasm', 'cpu', 'webgpu', 'webgl'],
  candidates: (choice) => (choice === 'auto' ? (['tensorflow', 'wasm', 'cpu'] as const) : [choice]).map(candidate),
  envChoice: () => process.env[BACKEND_ENV],
  describe,
};

/**
 * Initialises the tf.js backend and reports which one is in use (nothing is printed: the CLI
 * prints backendInfo()). Precedence: the `backend` argument, then SAM2_TFJS_BACKEND, then
 * `auto`, which keeps a backend already set with `tf.setBackend`, else tries tensorflow
 * (tfjs-node-gpu, else tfjs-node), wasm, cpu. Each pick must pass a conv + matMul smoke op;
 * failures fall through to the next candidate with the reason in `skipped`.
 */
export async function initBackend(backend?: BackendChoice): Promise<BackendInfo> {
  return initBackendOn(nodePlatform, backend);
}

/** The backend chosen by the last initBackend call, if any, with the executor loadSam2 set up. */
export function backendInfo(): BackendInfo | undefined {
  const current = coreBackendInfo();
  const executor = executorInfo();
  if (current && executor) current.executor = executor; // same object: callers may compare identity
  return current;
}
