/**
 * Ports an official SAM 2 / 2.1 checkpoint to TF.js weights.
 *   npx tsx scripts/port_weights.ts --checkpoint sam2.1_hiera_tiny.pt --out weights/sam2.1_hiera_tiny [--float16]
 * (the same as `npx sam2-tfjs port`.)
 */
import { parseArgs } from 'util';
import { portCheckpoint } from '../src/io/port';

function main(): number {
  let args;
  try {
    args = parseArgs({
      options: {
        checkpoint: { type: 'string' },
        out: { type: 'string' },
        float16: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (e) {
    console.error(`port_weights: ${(e as Error).message}`);
    return 2;
  }
  if (args.help || !args.checkpoint || !args.out) {
    console.error('usage: port_weights.ts --checkpoint <file.pt|file.safetensors> --out <dir> [--float16]');
    return args.help ? 0 : 2;
  }
  try {
    const r = portCheckpoint(args.checkpoint, args.out, { float16: args.float16 });
    console.log(
      `ported ${r.config.name}: ${r.tensors} tensors, ${(r.bytes / 2 ** 20).toFixed(1)} MiB in ${r.shards} shards -> ${r.outDir}`,
    );
    return 0;
  } catch (e) {
    console.error(`port_weights: ${(e as Error).message}`);
    return 1;
  }
}

process.exitCode = main();
