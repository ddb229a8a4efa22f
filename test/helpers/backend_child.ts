/**
 * Runs one backend-selection scenario in a fresh process with fake tfjs-node packages (the real
 * ones cannot be installed here) and prints a JSON report: backendInfo, how often each package
 * was loaded, and everything the library printed.
 *   argv[2]: JSON { installed: { [pkg]: 'gpu' | 'cpu' | 'broken' }, userRequires?: pkg,
 *                   setBackend?: name, first?: BackendChoice, choice?: BackendChoice }
 * 'gpu': TensorFlow uses a GPU; 'cpu': a GPU build that found none; 'broken': Conv2D fails
 * like a cuDNN mismatch does at the first op.
 */
import * as tf from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { initBackend, setModuleLoaderForTests, type BackendChoice } from '../../src/backend';

const scenario = JSON.parse(process.argv[2]) as {
  installed: Record<string, 'gpu' | 'cpu' | 'broken'>;
  userRequires?: string;
  setBackend?: string;
  choice?: BackendChoice;
  first?: BackendChoice;
};
const loads: Record<string, number> = {};
const printed: string[] = [];

function fakeRequire(name: string): unknown {
  const kind = scenario.installed[name];
  if (!kind)
    throw Object.assign(new Error(`Cannot find module '${name}'\nRequire stack: ...`), { code: 'MODULE_NOT_FOUND' });
  loads[name] = (loads[name] ?? 0) + 1;
  tf.registerBackend('tensorflow', () =>
    Object.assign(new MathBackendCPU(), {
      isUsingGpuDevice: kind === 'gpu',
      firstUse: false /* no tfjs-node advert */,
    }),
  );
  for (const k of tf.getKernelsForBackend('cpu')) {
    const broken = kind === 'broken' && k.kernelName === 'Conv2D';
    tf.registerKernel({
      ...k,
      backendName: 'tensorflow',
      kernelFunc: broken
        ? () => {
            throw new Error('Could not load dynamic library libcudnn.so.8; DNN library is not found.');
          }
        : k.kernelFunc,
    });
  }
  return {};
}

async function main() {
  setModuleLoaderForTests(fakeRequire);
  if (scenario.userRequires) fakeRequire(scenario.userRequires);
  if (scenario.setBackend) await tf.setBackend(scenario.setBackend);
  for (const m of ['log', 'warn', 'error', 'info'] as const)
    console[m] = (...a: unknown[]) => void printed.push(a.join(' '));
  let info: unknown;
  let error: string | undefined;
  try {
    if (scenario.first) await initBackend(scenario.first);
    info = await initBackend(scenario.choice);
    await initBackend(scenario.choice); // a second call must not load anything again
  } catch (e) {
    error = `${(e as { code?: string }).code}: ${(e as Error).message}`;
  }
  process.stdout.write(JSON.stringify({ info, error, loads, printed, active: tf.getBackend() }) + '\n');
}
void main();
