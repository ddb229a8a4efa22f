/**
 * The CLI's batch paths: `auto <inputs...> --out-dir` (local or `--queue`) and `worker`.
 * main.ts owns parsing and errors; this gets its helpers so the two stay in step.
 */
import { Sam2Error } from '../errors';
import type { SamModel } from '../model/sam_model';
import { generateForFiles } from '../batch/generate';
import { enqueueFiles, runWorker, type WorkerEvent } from '../batch/queue';
import type { BatchAmgOptions } from '../batch/sa1b';
import { batchProgressView, printSummary, type Out } from './batch_progress';

type Options = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** What main.ts lends: its number parser, its usage error (exit 2) and its model loader. */
export interface CliHelpers {
  num(v: unknown, what: string): number;
  usageError(message: string): Error;
  modelLoader(o: Options): () => Promise<SamModel>;
}

/** The AMG flags `auto` takes, in both its single-image and batch forms. */
export const AMG_FLAGS = {
  'points-per-side': 'pointsPerSide',
  'points-per-batch': 'pointsPerBatch',
  'pred-iou-thresh': 'predIouThresh',
  'stability-score-thresh': 'stabilityScoreThresh',
  'box-nms-thresh': 'boxNmsThresh',
  'crop-n-layers': 'cropNLayers',
  'min-mask-region-area': 'minMaskRegionArea',
} as const;

/** Options `auto` gains for batch runs. */
export const BATCH_OPTIONS = {
  'out-dir': { type: 'string' },
  overwrite: { type: 'boolean' },
  queue: { type: 'string' },
} as const;

function amgOptions(o: Options, h: CliHelpers): BatchAmgOptions {
  const amg: Record<string, number> = {};
  for (const [flag, key] of Object.entries(AMG_FLAGS))
    if (o[flag] !== undefined) amg[key] = h.num(o[flag], `--${flag}`);
  return amg;
}

/** `auto <inputs...> --out-dir OUT [--queue redis://...] [--overwrite]`. */
export async function runAutoBatch(
  p: string[],
  o: Options,
  h: CliHelpers,
  out: Out = process.stdout,
  err: Out = process.stderr,
): Promise<void> {
  if (!p.length) throw h.usageError('auto takes one or more images or directories');
  if (o['out-dir'] === undefined || o['out-dir'] === true)
    throw h.usageError('--queue needs --out-dir OUT (the producer writes the outputs)');
  if (o.out !== undefined) throw h.usageError('give --out (one image) or --out-dir (many), not both');
  if (o.overlay !== undefined) throw h.usageError('--overlay is for one image with --out');
  const outDir = String(o['out-dir']);
  const amg = amgOptions(o, h);
  const onProgress = batchProgressView(out, err);
  let summary;
  if (o.queue !== undefined) {
    if (o.model !== undefined || o['image-size'] !== undefined || o.backend !== undefined) {
      err.write('note: with --queue the workers compute, with their own --model and --image-size\n');
    }
    summary = await enqueueFiles(p, { queue: String(o.queue), outDir, amg, overwrite: !!o.overwrite, onProgress });
  } else {
    const loadModel = h.modelLoader(o); // checks --model before any work
    summary = await generateForFiles(p, { outDir, model: loadModel, amg, overwrite: !!o.overwrite, onProgress });
  }
  if (!printSummary(summary, outDir, out, err)) {
    throw new Sam2Error('IMAGE', `${summary.failed.length} of ${summary.found} images failed (listed above)`);
  }
}

export const WORKER_USAGE =
  'sam2-tfjs worker --queue redis://HOST:PORT[/DB] --model <dir|name> [--image-size n] [--concurrency 1] [--lock-duration 300] [--backend b]\n' +
  '  Takes `auto --out-dir OUT --queue ...` jobs until stopped (SIGTERM/SIGINT finish the current job first).\n' +
  "  A killed worker's job goes back to the queue once its lock (--lock-duration seconds) expires.";

export const WORKER_OPTIONS = {
  queue: { type: 'string' },
  concurrency: { type: 'string' },
  'lock-duration': { type: 'string' },
} as const;

function workerLine(e: WorkerEvent): string {
  switch (e.type) {
    case 'ready':
      return `worker ready on ${e.queue} (concurrency ${e.concurrency})`;
    case 'active':
      return `start ${e.relPath} (job ${e.jobId}, attempt ${e.attempt})`;
    case 'completed':
      return `done ${e.relPath}: ${e.masks} masks in ${e.seconds.toFixed(1)} s`;
    case 'failed':
      return `failed ${e.relPath}: ${e.error}${e.willRetry ? ' (will retry)' : ''}`;
    case 'stalled':
      return `job ${e.jobId} of a lost worker is back in the queue`;
    case 'error':
      return `queue error: ${e.error}`;
    case 'stopping':
      return 'stopping: finishing the current job';
  }
}

/** `worker --queue ... --model ...`: runs until SIGTERM/SIGINT (a second one exits at once). */
export async function runWorkerCli(p: string[], o: Options, h: CliHelpers, out: Out = process.stdout): Promise<void> {
  if (p.length) throw h.usageError('worker takes no positional arguments');
  if (typeof o.queue !== 'string') throw h.usageError('--queue redis://HOST:PORT[/DB] is required');
  const loadModel = h.modelLoader(o);
  const concurrency = o.concurrency !== undefined ? h.num(o.concurrency, '--concurrency') : 1;
  const lockDuration =
    o['lock-duration'] !== undefined ? h.num(o['lock-duration'], '--lock-duration') * 1000 : undefined;
  const stop = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals > 1) process.exit(sig === 'SIGINT' ? 130 : 143);
    stop.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    const s = await runWorker({
      queue: o.queue,
      model: loadModel,
      concurrency,
      lockDuration,
      signal: stop.signal,
      onEvent: (e) => out.write(`${workerLine(e)}\n`),
    });
    out.write(`worker stopped: ${s.completed} jobs done, ${s.failed} failed\n`);
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
