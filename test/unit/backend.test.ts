import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { execFileSync } from 'child_process';
import * as tf from '@tensorflow/tfjs';
import { initBackend, backendInfo, wasmDir, BACKEND_ENV } from '../../src/backend';
import { Sam2Error } from '../../src/errors';

const GPU = '@tensorflow/tfjs-node-gpu';
const CPU = '@tensorflow/tfjs-node';

interface ChildReport {
  info?: {
    choice: string;
    tfBackend: string;
    userSet: boolean;
    gpu: boolean;
    device: string;
    package?: string;
    skipped: string[];
    notes: string[];
  };
  error?: string;
  loads: Record<string, number>;
  printed: string[];
  active?: string;
}

/** One scenario of test/helpers/backend_child.ts in a fresh process (tf.js state is global). */
function scenario(s: {
  installed: Record<string, 'gpu' | 'cpu' | 'broken'>;
  userRequires?: string;
  setBackend?: string;
  first?: string;
  choice?: string;
}): ChildReport {
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', path.join(__dirname, '..', 'helpers', 'backend_child.ts'), JSON.stringify(s)],
    {
      env: { ...process.env, [BACKEND_ENV]: '' },
      encoding: 'utf8',
    },
  );
  return JSON.parse(out.trim().split('\n').pop() as string);
}

describe('backend selection', () => {
  it('reports the backend in use (wasm in tests) with the tfjs version', async () => {
    const info = await initBackend('wasm');
    expect(info.choice).to.equal('wasm');
    expect(info.tfBackend).to.equal('wasm');
    expect(tf.getBackend()).to.equal('wasm');
    expect(backendInfo()).to.equal(info);
    expect(info.tfjsVersion).to.match(/^\d+\.\d+\.\d+/);
  });

  it('resolves the wasm binaries from the installed package (offline)', () => {
    const dir = wasmDir();
    expect(fs.existsSync(path.join(dir, 'tfjs-backend-wasm-simd.wasm'))).to.equal(true);
  });

  it('rejects unknown backend names with a clear error', async () => {
    try {
      await initBackend('tpu' as never);
      expect.fail('should throw');
    } catch (e) {
      expect(e).to.be.instanceOf(Sam2Error);
      expect((e as Error).message).to.match(
        /Unknown backend "tpu".*tensorflow, node-gpu, node, wasm, cpu, webgpu, webgl/,
      );
    }
  });

  it('auto skips the optional tfjs-node peers when absent and falls back to wasm', function () {
    // run in a fresh process so the choice is not the one this test run made
    const src = path.join(__dirname, '..', '..', 'src', 'backend.ts');
    const out = execFileSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        `require(${JSON.stringify(src)}).initBackend().then(i => console.log(JSON.stringify(i)))`,
      ],
      { env: { ...process.env, SAM2_TFJS_BACKEND: '', SAM2_TFJS_QUIET: '1' }, encoding: 'utf8' },
    );
    const info = JSON.parse(out.trim().split('\n').pop() as string);
    let hasNode = true;
    try {
      require.resolve('@tensorflow/tfjs-node');
    } catch {
      hasNode = false;
    }
    if (!hasNode) {
      expect(info.choice).to.equal('wasm');
      expect(info.skipped.join(' ')).to.match(
        /tensorflow: @tensorflow\/tfjs-node-gpu is not installed; @tensorflow\/tfjs-node is not installed/,
      );
    } else {
      expect(info.choice).to.equal('tensorflow');
    }
  });

  it('honours SAM2_TFJS_BACKEND', () => {
    const src = path.join(__dirname, '..', '..', 'src', 'backend.ts');
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', '-e', `require(${JSON.stringify(src)}).initBackend().then(i => console.log(i.choice))`],
      { env: { ...process.env, SAM2_TFJS_BACKEND: 'cpu', SAM2_TFJS_QUIET: '1' }, encoding: 'utf8' },
    );
    expect(out.trim().split('\n').pop()).to.equal('cpu');
  });

  describe('Node GPU selection with fake tfjs-node packages', () => {
    it('tfjs-node-gpu on a GPU: tensorflow backend, reported as GPU, tfjs-node never loaded, nothing printed', () => {
      const r = scenario({ installed: { [GPU]: 'gpu', [CPU]: 'cpu' } });
      expect(r.info).to.include({
        choice: 'tensorflow',
        tfBackend: 'tensorflow',
        gpu: true,
        package: GPU,
        device: 'TensorFlow (tfjs-node-gpu) on GPU',
      });
      expect(r.loads).to.deep.equal({ [GPU]: 1 });
      expect(r.printed).to.deep.equal([]);
    });

    it('tfjs-node-gpu without a usable GPU: says it runs on the CPU and which CUDA/cuDNN it needs', () => {
      const r = scenario({ installed: { [GPU]: 'cpu', [CPU]: 'cpu' } });
      expect(r.info).to.include({ tfBackend: 'tensorflow', gpu: false, device: 'TensorFlow (tfjs-node-gpu) on CPU' });
      expect(r.info?.notes.join(' ')).to.match(/CUDA 11\.2 and cuDNN 8\.1/);
      expect(r.loads).to.deep.equal({ [GPU]: 1 });
    });

    it('a CUDA/cuDNN mismatch fails the smoke op: falls back to wasm with the reason, without loading tfjs-node', () => {
      const r = scenario({ installed: { [GPU]: 'broken', [CPU]: 'cpu' } });
      expect(r.info).to.include({ choice: 'wasm', tfBackend: 'wasm', gpu: false });
      expect(r.info?.skipped).to.have.length(1);
      expect(r.info?.skipped[0]).to.match(/^tensorflow: Could not load dynamic library libcudnn\.so\.8.*CUDA 11\.2/);
      expect(r.loads).to.deep.equal({ [GPU]: 1 });
      expect(r.printed).to.deep.equal([]);
    });

    it('only tfjs-node installed: tensorflow on the CPU, no GPU claimed', () => {
      const r = scenario({ installed: { [CPU]: 'cpu' } });
      expect(r.info).to.include({ tfBackend: 'tensorflow', gpu: false, package: CPU });
      expect(r.info?.skipped).to.deep.equal([]);
      expect(r.loads).to.deep.equal({ [CPU]: 1 });
    });

    it('a tfjs-node package the user already required is reused, not loaded again', () => {
      const r = scenario({ installed: { [GPU]: 'gpu', [CPU]: 'cpu' }, userRequires: GPU, choice: 'tensorflow' });
      expect(r.info).to.include({ tfBackend: 'tensorflow', gpu: true });
      expect(r.loads).to.deep.equal({ [GPU]: 1 });
    });

    it('asking for node after node-gpu is loaded is refused with the reason (never both)', () => {
      const r = scenario({ installed: { [GPU]: 'gpu', [CPU]: 'cpu' }, first: 'node-gpu', choice: 'node' });
      expect(r.error).to.match(/^BACKEND: No usable tf.js backend \(node: .*cannot be loaded beside it\)/);
      expect(r.loads).to.deep.equal({ [GPU]: 1 });
    });

    it('auto keeps a backend the user set with tf.setBackend', () => {
      const r = scenario({ installed: { [GPU]: 'gpu' }, setBackend: 'cpu' });
      expect(r.info).to.include({ choice: 'cpu', tfBackend: 'cpu', userSet: true, gpu: false });
      expect(r.active).to.equal('cpu');
      expect(r.loads).to.deep.equal({});
    });

    it('webgl / webgpu in Node are refused with a reason, not a tf.js warning', () => {
      for (const choice of ['webgl', 'webgpu']) {
        const r = scenario({ installed: {}, choice });
        expect(r.error).to.match(new RegExp(`^BACKEND: No usable tf.js backend \\(${choice}: no `));
        expect(r.printed).to.deep.equal([]);
      }
    });
  });
});
