/**
 * Same-run ratios of sam2-tfjs to the PyTorch reference: alternates `bench/run.ts` and
 * `bench/reference/sam2_torch.py` (same stages, inputs and formula weights) for a few rounds and
 * prints, per stage, each round's ratio (sam2-tfjs seconds / PyTorch seconds) and their median.
 * Timings on shared VMs drift between runs; ratios from alternating runs do not.
 *
 *   SAM2_REFERENCE_DIR=/path/to/sam2 npm run bench:reference -- [--rounds 2] [stage ...]
 *
 * Stages: set_image, predict_click_median, predict_batch, per_frame (median over frames), generate,
 * generate_defaults (AMG defaults: 32x32 points on truck.jpg; not run unless named).
 * SAM2_TFJS_EXECUTOR=onnxruntime compares the ONNX Runtime executor instead of TF.js.
 * PYTHON picks the interpreter (default /usr/bin/python3, Debian's, which has python3-torch).
 *
 * The reference runs with a caching allocator (tcmalloc, else jemalloc, preloaded when installed:
 * Debian's libtcmalloc-minimal4 / libjemalloc2), as PyTorch's CPU performance guides advise. With
 * glibc's malloc every tensor over 32 MB is a fresh mmap; on these VMs first-touch page faults run
 * at ~0.7 GB/s, which made PyTorch's set_image 8-10 s instead of ~3 s (2026-12-06).
 * SAM2_TORCH_MALLOC=system keeps glibc's malloc; SAM2_TORCH_MALLOC=/path/lib.so picks another.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const STAGES = ['set_image', 'predict_click_median', 'predict_batch', 'per_frame', 'generate', 'generate_defaults'];

interface Line {
  stage: string;
  seconds: number | number[];
  median?: number;
  backend: string;
  executor?: string;
  threads: number | null;
}

const ALLOCATORS = [
  '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4',
  '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
  '/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4',
  '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2',
];

/** The reference's environment: a caching allocator preloaded unless SAM2_TORCH_MALLOC=system. */
function torchEnv(): { env: NodeJS.ProcessEnv; allocator: string } {
  const want = process.env.SAM2_TORCH_MALLOC;
  if (want === 'system') return { env: process.env, allocator: 'glibc' };
  const lib = want ?? ALLOCATORS.find((p) => fs.existsSync(p));
  if (!lib) return { env: process.env, allocator: 'glibc (install libtcmalloc-minimal4 for a fair comparison)' };
  if (!fs.existsSync(lib)) throw new Error(`SAM2_TORCH_MALLOC=${lib}: no such file`);
  // jemalloc returns freed pages to the kernel unless told to keep them
  const env = { ...process.env, LD_PRELOAD: lib, MALLOC_CONF: 'dirty_decay_ms:-1,muzzy_decay_ms:-1' };
  return { env, allocator: path.basename(lib) };
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Line[] {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, env });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr.slice(-2000)}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);
}

const secondsOf = (l: Line) => (Array.isArray(l.seconds) ? l.median! : l.seconds);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function main() {
  const args = process.argv.slice(2);
  let rounds = 2;
  const at = args.indexOf('--rounds');
  if (at >= 0) rounds = Number(args.splice(at, 2)[1]);
  for (const a of args) if (!STAGES.includes(a)) throw new Error(`unknown stage ${a}; stages: ${STAGES.join(', ')}`);
  const stages = args.length ? args : STAGES.filter((s) => s !== 'generate_defaults');
  const root = path.join(__dirname, '..');
  const python = process.env.PYTHON || '/usr/bin/python3';
  const ratios = new Map<string, number[]>(stages.map((s) => [s, []]));
  const torch = torchEnv();
  console.log(JSON.stringify({ torchAllocator: torch.allocator }));
  for (let i = 0; i < rounds; i++) {
    // alternate which program goes first, so a drift in machine speed hits both alike
    const order = i % 2 === 0 ? ['tfjs', 'torch'] : ['torch', 'tfjs'];
    const got: Record<string, Line[]> = {};
    for (const who of order)
      got[who] =
        who === 'tfjs'
          ? run(process.execPath, [require.resolve('tsx/cli'), path.join(root, 'bench/run.ts'), ...stages])
          : run(python, [path.join(root, 'bench/reference/sam2_torch.py'), ...stages], torch.env);
    for (const s of stages) {
      const a = got.tfjs.find((l) => l.stage === s)!;
      const b = got.torch.find((l) => l.stage === s)!;
      const ratio = secondsOf(a) / secondsOf(b);
      ratios.get(s)!.push(ratio);
      console.log(
        JSON.stringify({
          round: i + 1,
          stage: s,
          tfjs: secondsOf(a),
          torch: secondsOf(b),
          ratio: Math.round(ratio * 100) / 100,
          tfjsExecutor: a.executor,
          tfjsBackend: a.backend,
          tfjsThreads: a.threads,
          torchThreads: b.threads,
        }),
      );
    }
  }
  console.log('\n| stage | sam2-tfjs / PyTorch (median of rounds) | rounds |');
  console.log('|---|---|---|');
  for (const [s, r] of ratios)
    console.log(`| ${s} | ${median(r).toFixed(2)}x | ${r.map((x) => x.toFixed(2)).join(', ')} |`);
}

main();
