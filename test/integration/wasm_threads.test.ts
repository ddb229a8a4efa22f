import { expect } from 'chai';
import * as os from 'os';
import * as path from 'path';
import { execFile } from 'child_process';
import { backendInfo } from '../../src/backend';
import { THREADS_ENV, availableThreads } from '../../src/wasm_threads';
import { parallelMemoryAttentionAvailable } from '../../src/model/memory_attention_parallel';

interface ChildResult {
  wasmThreads: { threads: number; reason?: string };
  image: string;
  all: string;
}

/** Runs test/helpers/threads_child.ts in a fresh process; it must exit by itself. */
function child(threads: string | undefined, infoOnly = false): Promise<ChildResult> {
  const script = path.join(__dirname, '..', 'helpers', 'threads_child.ts');
  const env: NodeJS.ProcessEnv = { ...process.env, SAM2_TFJS_QUIET: '1', SAM2_TFJS_BACKEND: '' };
  if (threads === undefined) delete env[THREADS_ENV];
  else env[THREADS_ENV] = threads;
  return new Promise((resolve, reject) => {
    // the timeout catches a pool thread that keeps the process alive
    execFile(
      process.execPath,
      ['--import', 'tsx', script, ...(infoOnly ? ['--info-only'] : [])],
      { env, encoding: 'utf8', timeout: 240_000 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`${err.message}\n${stderr}`));
        resolve(JSON.parse(stdout.trim().split('\n').pop() as string));
      },
    );
  });
}

const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;

describe('wasm backend on every core (threaded SIMD build)', () => {
  it('is off unless asked for (SAM2_TFJS_THREADS), and then the memory-attention worker is used', function () {
    const t = backendInfo()?.wasmThreads;
    expect(t, 'backendInfo().wasmThreads').to.not.equal(undefined);
    if (process.env[THREADS_ENV] && Number(process.env[THREADS_ENV]) >= 2) {
      expect(t!.threads).to.equal(Math.min(Number(process.env[THREADS_ENV]), 8));
      return;
    }
    expect(t!.threads).to.equal(1);
    expect(t!.reason).to.match(/off by default|SAM2_TFJS_THREADS/);
    if (cores >= 2) expect(parallelMemoryAttentionAvailable()).to.equal(true);
  });

  it('gives bit-identical masks and logits with threads on and off, and the process exits', async function () {
    if (cores < 2) this.skip();
    const on = await child(String(availableThreads()));
    const off = await child('1');
    expect(on.wasmThreads.threads).to.equal(availableThreads());
    expect(off.wasmThreads).to.deep.equal({ threads: 1, reason: `${THREADS_ENV}=1` });
    expect(on.image, 'SamPredictor.predict').to.equal(off.image);
    expect(on.all, 'image + 2 tracked frames x 2 objects').to.equal(off.all);
  });

  it('explains a bad thread count and falls back to one thread', async function () {
    const r = await child('many', true);
    expect(r.wasmThreads).to.deep.equal({ threads: 1, reason: `${THREADS_ENV}="many" is not a thread count` });
  });
});
