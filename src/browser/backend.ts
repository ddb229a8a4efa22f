/**
 * Backend selection in browsers (replaces src/backend.ts in the browser build): `auto` keeps a
 * backend the page set with `tf.setBackend`, else tries webgpu, webgl, wasm, then cpu, each
 * checked by the same conv + matMul smoke op as in Node. The wasm binaries are loaded from
 * next to sam2-tfjs.mjs unless `setWasmPaths` says otherwise.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths as setTfWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { initBackendOn, type BackendChoice, type BackendInfo, type Candidate, type Platform } from '../backend_core';

export {
  BACKEND_ENV,
  backendInfo,
  smokeTest,
  type BackendChoice,
  type BackendInfo,
  type BackendName,
} from '../backend_core';

/** Set by the bundle's first line to `import.meta.url` (see scripts/build_browser.js). */
declare const __SAM2_BUNDLE_URL__: string | undefined;

let wasmBase: string | undefined;

/** Where the tfjs-backend-wasm `.wasm` files are served (a folder URL ending in `/`). */
export function setWasmPaths(folderUrl: string): void {
  wasmBase = folderUrl;
}

function defaultWasmBase(): string {
  const here = typeof __SAM2_BUNDLE_URL__ === 'string' ? __SAM2_BUNDLE_URL__ : globalThis.location?.href;
  return new URL('./', here).href;
}

const software = /swiftshader|llvmpipe|softpipe|software|basic render/i;

function webglRenderer(): string {
  try {
    const gl = (tf.backend() as unknown as { gpgpu?: { gl?: WebGLRenderingContext } }).gpgpu?.gl;
    if (!gl) return '';
    const ext = gl.getExtension('WEBGL_debug_renderer_info');
    return String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER) ?? '');
  } catch {
    return '';
  }
}

let adapterName = '';

function describe(tfBackend: string): Pick<BackendInfo, 'gpu' | 'device' | 'notes'> {
  if (tfBackend === 'webgl' || tfBackend === 'webgpu') {
    const name = tfBackend === 'webgl' ? webglRenderer() : adapterName;
    // SwiftShader & co. are GPU APIs computed on the CPU: do not call them a GPU
    const gpu = !software.test(name);
    return {
      gpu,
      device: `${tfBackend === 'webgl' ? 'WebGL' : 'WebGPU'}${name ? ` (${name})` : ''}${gpu ? '' : ' on CPU'}`,
      notes: [],
    };
  }
  return { gpu: false, device: tfBackend === 'wasm' ? 'WebAssembly on CPU' : 'JavaScript on CPU', notes: [] };
}

async function use(name: string): Promise<void> {
  if (!(await tf.setBackend(name))) throw new Error(`the ${name} backend did not initialise`);
}

function candidate(choice: Exclude<BackendChoice, 'auto'>): Candidate {
  const activate = async () => {
    switch (choice) {
      case 'webgpu': {
        // asked first so tf.js does not log its own initialisation failure
        const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
        const adapter = (await gpu?.requestAdapter()) as
          | { info?: { vendor?: string; architecture?: string; device?: string; description?: string } }
          | null
          | undefined;
        if (!adapter)
          throw new Error(
            gpu
              ? 'no WebGPU adapter'
              : 'no WebGPU in this browser (navigator.gpu is missing; it needs a secure context)',
          );
        const info = adapter.info ?? {};
        adapterName = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ');
        break;
      }
      case 'webgl': {
        const canvas =
          typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(1, 1) : document.createElement('canvas');
        if (!canvas.getContext('webgl2') && !canvas.getContext('webgl')) throw new Error('no WebGL context');
        break;
      }
      case 'wasm':
        setTfWasmPaths(wasmBase ?? defaultWasmBase());
        break;
      case 'cpu':
        break;
      default:
        throw new Error(`the ${choice} backend needs Node.js`);
    }
    await use(choice);
    return { ...describe(choice), tfBackend: choice };
  };
  return { choice, activate };
}

const browserPlatform: Platform = {
  choices: ['webgpu', 'webgl', 'wasm', 'cpu'],
  candidates: (choice) => (choice === 'auto' ? (['webgpu', 'webgl', 'wasm', 'cpu'] as const) : [choice]).map(candidate),
  envChoice: () => undefined,
  describe,
};

/**
 * Initialises the tf.js backend and reports which one is in use. `auto` keeps a backend the page
 * already set with `tf.setBackend` (use the `tf` this module exports), else tries webgpu, webgl,
 * wasm, cpu; failures fall through with the reason in `skipped`.
 */
export async function initBackend(backend?: BackendChoice): Promise<BackendInfo> {
  return initBackendOn(browserPlatform, backend);
}
