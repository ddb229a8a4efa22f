import { expect } from 'chai';
import * as os from 'os';
import * as path from 'path';
import { execFile } from 'child_process';
import { backendInfo } from '../../src/backend';
import { THREADS_ENV, availableThreads, guardWasmHeap } from '../../src/wasm_threads';
import { expectSam2Error } from '../helpers';
import { parallelMemoryAttentionAvailable } from '../../src/model/memory_attention_parallel';

interface ChildResult {
  wasmThreads: { threads: number; reason?: string };
  image: string;
  all: string;
}

/** Runs a helper script in a fresh process; it must exit by itself. */
function child<T = ChildResult>(
  threads: string | undefined,
  infoOnly = false,
  helper = 'threads_child.ts',
): Promise<T> {
  const script = path.join(__dirname, '..', 'helpers', helper);
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
  it('is on by default on 2+ cores (SAM2_TFJS_THREADS overrides), and then the memory-attention worker is not used', function () {
    const t = backendInfo()?.wasmThreads;
    expect(t, 'backendInfo().wasmThreads').to.not.equal(undefined);
    const env = process.env[THREADS_ENV];
    if (env !== undefined && env !== '') {
      expect(t!.threads).to.equal(Number(env) >= 2 ? Math.min(Number(env), 8) : 1);
      return;
    }
    expect(t!.threads).to.equal(availableThreads());
    if (cores >= 2) expect(parallelMemoryAttentionAvailable()).to.equal(false);
    else expect(t!.reason).to.equal('one core');
  });

  it('the default process uses every core and exits by itself', async function () {
    if (cores < 2) this.skip();
    const r = await child(undefined, true);
    expect(r.wasmThreads).to.deep.equal({ threads: availableThreads() });
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

  it('a full heap throws a MEMORY Sam2Error instead of writing the tensor at address 0', async function () {
    // tfjs uses _malloc's 0 as the tensor's address; Emscripten's lazy _malloc replaces itself on first call
    let room = 1;
    let at = 8;
    const asm = { malloc: (bytes: number) => (bytes <= room ? at : 0) };
    const module = {
      asm,
      _malloc(bytes: number): number {
        module._malloc = asm.malloc;
        return asm.malloc(bytes);
      },
    };
    expect(guardWasmHeap({ _malloc: () => 8 }), 'no wasm export to call').to.equal(false);
    expect(guardWasmHeap(module)).to.equal(true);
    expect(guardWasmHeap(module), 'idempotent').to.equal(true);
    expect(module._malloc(1)).to.equal(8);
    expect(module._malloc(0)).to.equal(8);
    room = 0;
    await expectSam2Error(
      () => module._malloc(2 ** 20),
      'MEMORY',
      /wasm heap is full \(4 GB\): no room for a 1\.0 MB tensor/,
    );
    // near the top, the allocator once returned a block ending past 2^32 (its end wraps to 0)
    room = 2 ** 20;
    at = 4294046856 | 0; // _malloc returns a signed int
    await expectSam2Error(() => module._malloc(2 ** 20), 'MEMORY', /no room for a 1\.0 MB tensor/);
  });

  it('after the heap filled up to 4 GB, threaded kernels still run and give the same results (the hang seen in the whole suite)', async function () {
    interface HeapResult {
      wasmThreads: { threads: number };
      error?: { name: string; code?: string; message: string };
      xnn?: { name: string; code?: string; message: string };
      fullHeapMb: number;
      before: string;
      after: string[];
      tensors: number;
    }
    const r = await child<HeapResult>(undefined, false, 'heap_child.ts');
    if (cores >= 2) expect(r.wasmThreads.threads).to.equal(availableThreads());
    expect(r.error).to.include({ name: 'Sam2Error', code: 'MEMORY' });
    expect(r.fullHeapMb).to.be.greaterThan(4000);
    // XNNPACK's own allocation failing: an error (MEMORY, or a trap near 4 GB), not garbage
    if (r.wasmThreads.threads > 1) expect(r.xnn, 'matMul with no room for its packed weight').to.not.equal(undefined);
    expect(r.after).to.deep.equal([r.before, r.before]);
    expect(r.tensors).to.equal(0);
  });
});
