/**
 * Backend selection shared by the Node and browser builds: candidates are tried in order, each
 * must pass a small conv + matMul check (a GPU build whose CUDA/cuDNN does not match fails at the
 * first op, not when it loads), and a backend the user already activated is never replaced
 * unless a specific one is asked for. The platforms (src/backend.ts, src/browser/backend.ts)
 * only say how to activate each candidate. Nothing here prints: callers read backendInfo().
 */
import * as tf from '@tensorflow/tfjs';
import type { ExecutorInfo } from './executor';
import type { WasmThreads } from './wasm_threads';
import { Sam2Error } from './errors';
import { patchWasmKernels } from './wasm_kernels';

/** tf.js backend names sam2-tfjs can run on. */
export type BackendName = 'tensorflow' | 'webgpu' | 'webgl' | 'wasm' | 'cpu';

/**
 * What the user may ask for. `auto` keeps a backend already set with `tf.setBackend`, else tries
 * (Node) tensorflow, wasm, cpu or (browsers) webgpu, webgl, wasm, cpu. `node-gpu` / `node` ask
 * for the tensorflow backend from that package.
 */
export type BackendChoice = 'auto' | BackendName | 'node-gpu' | 'node';

export interface BackendInfo {
  /** The choice that was satisfied (never `auto`); for a backend the user set, its tf.js name. */
  choice: Exclude<BackendChoice, 'auto'>;
  /** tf.js's own backend name (`tensorflow`, `webgpu`, `webgl`, `wasm`, `cpu`). */
  tfBackend: string;
  /** The backend was already active (set with `tf.setBackend` or by earlier tf.js calls) and was kept. */
  userSet: boolean;
  /** Whether the computation runs on a GPU (for tfjs-node-gpu: TensorFlow's `isUsingGpuDevice`). */
  gpu: boolean;
  /** One line on where the computation runs, e.g. `TensorFlow (tfjs-node-gpu) on GPU`. */
  device: string;
  /** The package that provides the backend, when it is an optional one. */
  package?: string;
  /** Why earlier candidates were skipped (failed to load or failed the smoke op). */
  skipped: string[];
  /** Things the user should know, e.g. the CUDA/cuDNN tfjs-node-gpu needs to use the GPU. */
  notes: string[];
  tfjsVersion: string;
  /** The executor (tfjs or onnxruntime, provider, threads) of the last model loadSam2 loaded (Node). */
  executor?: ExecutorInfo;
  /** wasm in Node: threads XNNPACK runs on and, when 1, why (SAM2_TFJS_THREADS, one core, a failure). */
  wasmThreads?: WasmThreads;
}

/** How a platform activates one candidate. */
export interface Candidate {
  choice: Exclude<BackendChoice, 'auto'>;
  /** Registers (if needed) and sets the backend; throws with a one-line reason when it cannot. */
  activate(): Promise<Omit<BackendInfo, 'choice' | 'skipped' | 'tfjsVersion' | 'userSet'>>;
  /** Added to the reason when the candidate fails (e.g. the CUDA version a GPU build needs). */
  hint?: () => string | undefined;
}

export interface Platform {
  /** Every choice this platform understands, for error messages. */
  choices: Exclude<BackendChoice, 'auto'>[];
  /** Candidates for a choice (`auto`: the platform's order). */
  candidates(choice: BackendChoice): Candidate[];
  /** The choice from the environment (SAM2_TFJS_BACKEND in Node), if any. */
  envChoice(): string | undefined;
  /** Describes a backend found active (not set by us). */
  describe(tfBackend: string): Pick<BackendInfo, 'gpu' | 'device' | 'notes' | 'package'>;
}

/** Environment variable that forces a backend in Node, e.g. `SAM2_TFJS_BACKEND=wasm`. */
export const BACKEND_ENV = 'SAM2_TFJS_BACKEND';

const firstLine = (e: unknown) => String((e as Error)?.message ?? e).split('\n')[0];

/**
 * A conv and a matMul with known results, read back: proves the backend's kernels run.
 * Throws with the backend's own error (e.g. a missing cuDNN) or a wrong-values message.
 */
export async function smokeTest(): Promise<void> {
  const [conv, mm] = tf.tidy(() => {
    const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1]);
    const k = tf.ones([2, 2, 1, 2]) as tf.Tensor4D;
    const a = tf.tensor2d([1, 2, 3, 4], [2, 2]);
    return [tf.conv2d(x, k, 1, 'valid'), tf.matMul(a, a)];
  });
  try {
    const c = Array.from(await conv.data()) as number[];
    const m = Array.from(await mm.data()) as number[];
    const wantC = [12, 12, 16, 16, 24, 24, 28, 28];
    const wantM = [7, 10, 15, 22];
    const ok = (got: number[], want: number[]) =>
      got.length === want.length && got.every((v, i) => Math.abs(v - want[i]) < 1e-3);
    if (!ok(c, wantC) || !ok(m, wantM)) throw new Error(`smoke op gave wrong values (conv [${c}], matMul [${m}])`);
  } finally {
    tf.dispose([conv, mm]);
  }
}

let current: BackendInfo | undefined;
let pending: Promise<BackendInfo> | undefined;

function parseChoice(platform: Platform, value: string | undefined, where: string): BackendChoice | undefined {
  if (value === undefined || value === '') return undefined;
  const v = value.toLowerCase();
  if (v === 'auto' || (platform.choices as string[]).includes(v)) return v as BackendChoice;
  throw new Sam2Error(
    'BACKEND',
    `Unknown backend "${value}". Use one of: auto, ${platform.choices.join(', ')} (${where}).`,
  );
}

/** Whether an earlier selection still satisfies `wanted`. */
function satisfies(info: BackendInfo, wanted: BackendChoice): boolean {
  if (wanted === 'auto' || wanted === info.choice) return true;
  if (wanted === 'node-gpu') return info.package === '@tensorflow/tfjs-node-gpu';
  if (wanted === 'node') return info.package === '@tensorflow/tfjs-node';
  return info.tfBackend === wanted;
}

async function select(platform: Platform, wanted: BackendChoice, smoke: () => Promise<void>): Promise<BackendInfo> {
  const skipped: string[] = [];
  for (const c of platform.candidates(wanted)) {
    try {
      const found = await c.activate();
      await tf.ready();
      await smoke();
      return { choice: c.choice, userSet: false, skipped, tfjsVersion: tf.version.tfjs, ...found };
    } catch (e) {
      const hint = c.hint?.();
      skipped.push(`${c.choice}: ${firstLine(e)}${hint ? ` (${hint})` : ''}`);
    }
  }
  throw new Sam2Error('BACKEND', `No usable tf.js backend (${skipped.join('; ')}).`);
}

/**
 * Initialises the tf.js backend and reports which one is in use. Precedence: the `backend`
 * argument, then the platform's environment choice, then `auto`; `auto` keeps a backend that is
 * already active (the user's `tf.setBackend`).
 */
export async function initBackendOn(
  platform: Platform,
  backend?: BackendChoice,
  smoke: () => Promise<void> = smokeTest,
): Promise<BackendInfo> {
  const wanted =
    parseChoice(platform, backend, 'option "backend"') ??
    parseChoice(platform, platform.envChoice(), BACKEND_ENV) ??
    'auto';
  if (pending) await pending.catch(() => undefined);
  const active = tf.engine().backendName;
  if (current && active === current.tfBackend && satisfies(current, wanted)) return current;
  if (wanted === 'auto' && active) {
    // Set by the user (or by tf.js for tensors made before us): theirs to choose, keep it.
    current = {
      choice: active as BackendName,
      tfBackend: active,
      userSet: true,
      skipped: [],
      tfjsVersion: tf.version.tfjs,
      ...platform.describe(active),
    };
    if (active === 'cpu') {
      // also what tf.js picks by itself when a tensor is made before any backend is chosen
      current.notes = [
        ...current.notes,
        'kept the cpu backend that was already active (set with tf.setBackend, or picked by tf.js for a tensor made before loading); it is ~30x slower than wasm: pass backend "wasm" (or "auto" before making tensors) to change it.',
      ];
    }
    if (active === 'wasm') patchWasmKernels();
    return current;
  }
  pending = select(platform, wanted, smoke);
  try {
    current = await pending;
  } finally {
    pending = undefined;
  }
  if (current.tfBackend === 'wasm') patchWasmKernels();
  return current;
}

/** The backend chosen by the last initBackend call, if any. */
export function backendInfo(): BackendInfo | undefined {
  return current;
}
