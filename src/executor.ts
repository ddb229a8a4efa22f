/**
 * Executor choice (ground floor): what runs the model's heavy parts. TF.js (the default, and
 * the definition of the architecture) or ONNX Runtime for Node, an optional peer that runs
 * graphs built from the same layers and weights (src/onnx/) at native speed. The executors
 * themselves are in model/executor.ts (TF.js) and onnx/ort_executor.ts; loadSam2 builds one.
 */
import { Sam2Error } from './errors';

/** What the user may ask for: `auto` uses ONNX Runtime when onnxruntime-node is installed. */
export type ExecutorChoice = 'tfjs' | 'onnxruntime' | 'auto';

/** Environment variable that picks the executor, e.g. `SAM2_TFJS_EXECUTOR=onnxruntime`. */
export const EXECUTOR_ENV = 'SAM2_TFJS_EXECUTOR';

/** ONNX Runtime execution providers we configure (CUDA falls back to CPU with a reason). */
export type ExecutionProvider = 'cpu' | 'cuda';

export interface ExecutorInfo {
  /** The executor in use (never `auto`). */
  executor: Exclude<ExecutorChoice, 'auto'>;
  /** ONNX Runtime's execution provider, or the tf.js backend name for `tfjs`. */
  provider: string;
  /** Intra-op threads (ONNX Runtime), when known. */
  threads?: number;
  /** Version of the executor's runtime. */
  version?: string;
  /** Why a requested executor or provider was not used. */
  fallback?: string[];
}

/** Parses an executor choice (option or environment), with a coded error for anything else. */
export function parseExecutorChoice(value: string | undefined): ExecutorChoice | undefined {
  if (value === undefined || value === '') return undefined;
  const v = value.toLowerCase();
  if (v === 'tfjs' || v === 'onnxruntime' || v === 'auto') return v;
  throw new Sam2Error(
    'BACKEND',
    `Unknown executor "${value}". Use one of: tfjs, onnxruntime, auto (option "executor" or ${EXECUTOR_ENV}).`,
  );
}

/** onnxruntime-node when it is installed and loads, else the reason it does not. */
export function tryLoadOnnxRuntime(): { ort?: unknown; reason?: string } {
  try {
    // optional peer: looked up at run time so TF.js users never need it (its types stay internal)
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- optional peer, resolved at run time
    return { ort: require('onnxruntime-node') as unknown };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return {
      reason:
        err.code === 'MODULE_NOT_FOUND'
          ? 'onnxruntime-node is not installed'
          : `onnxruntime-node did not load: ${err.message.split('\n')[0]}`,
    };
  }
}

/**
 * Resolves a choice to the executor to build: `auto` takes ONNX Runtime when `load` finds it,
 * `onnxruntime` fails with a BACKEND error when it is missing.
 */
export function resolveExecutorChoice(
  choice: ExecutorChoice,
  load: () => { ort?: unknown; reason?: string } = tryLoadOnnxRuntime,
): { executor: Exclude<ExecutorChoice, 'auto'>; reason?: string } {
  if (choice === 'tfjs') return { executor: 'tfjs' };
  const r = load();
  if (r.ort) return { executor: 'onnxruntime' };
  if (choice === 'onnxruntime') {
    throw new Sam2Error(
      'BACKEND',
      `executor "onnxruntime" was asked for but ${r.reason}. Install it (npm install onnxruntime-node; set ONNXRUNTIME_NODE_INSTALL=skip to skip its CUDA download) or use executor "tfjs".`,
    );
  }
  return { executor: 'tfjs', reason: `onnxruntime: ${r.reason}` };
}

let lastInfo: ExecutorInfo | undefined;

/** Records the executor of the last loaded model (reported by backendInfo() and `info`). */
export function setExecutorInfo(info: ExecutorInfo): void {
  lastInfo = info;
}

/** The executor of the last model loaded by loadSam2, if any. */
export function executorInfo(): ExecutorInfo | undefined {
  return lastInfo;
}

export interface ExecutorOptions {
  /** `tfjs` (default), `onnxruntime`, or `auto`; SAM2_TFJS_EXECUTOR when not given. */
  executor?: ExecutorChoice;
  /** ONNX Runtime execution provider: `cpu` (default) or `cuda` (falls back to cpu with a reason). */
  executionProvider?: ExecutionProvider;
  /** ONNX Runtime intra-op threads (default: the number of cores). */
  threads?: number;
  /** Where to cache the ONNX graphs (default `<weights dir>/onnx/<imageSize>`), or false for none. */
  onnxCacheDir?: string | false;
}
