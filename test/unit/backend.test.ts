import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { execFileSync } from 'child_process';
import * as tf from '@tensorflow/tfjs';
import { initBackend, backendInfo, wasmDir } from '../../src/backend';
import { Sam2Error } from '../../src/errors';

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
      expect((e as Error).message).to.match(/Unknown backend "tpu".*node-gpu, node, wasm, cpu/);
    }
  });

  it('auto skips the optional tfjs-node peers when absent and falls back to wasm', function () {
    // run in a fresh process so the choice is not the one this test run made
    const src = path.join(__dirname, '..', '..', 'src', 'backend.ts');
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', '-e', `require(${JSON.stringify(src)}).initBackend().then(i => console.log(JSON.stringify(i)))`],
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
      expect(info.skipped.join(' ')).to.match(/node-gpu:.*node:/);
    } else {
      expect(['node-gpu', 'node']).to.include(info.choice);
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
});
