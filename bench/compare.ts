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
 */
import { spawnSync } from 'child_process';
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

function run(cmd: string, args: string[]): Line[] {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, env: process.env });
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
  for (let i = 0; i < rounds; i++) {
    // alternate which program goes first, so a drift in machine speed hits both alike
    const order = i % 2 === 0 ? ['tfjs', 'torch'] : ['torch', 'tfjs'];
    const got: Record<string, Line[]> = {};
    for (const who of order)
      got[who] =
        who === 'tfjs'
          ? run(process.execPath, [require.resolve('tsx/cli'), path.join(root, 'bench/run.ts'), ...stages])
          : run(python, [path.join(root, 'bench/reference/sam2_torch.py'), ...stages]);
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
