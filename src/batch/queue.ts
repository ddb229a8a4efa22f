/**
 * Batch runs scaled out on BullMQ (Redis): `enqueueFiles` is the producer (one job per image,
 * image bytes and options in the job; it writes the outputs itself, so workers need no shared
 * file system), `runWorker` the consumer. bullmq is required lazily, only by these two.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import { Sam2Error } from '../errors';
import type { SamModel } from '../model/sam_model';
import { outputPath, writeFileAtomic } from './files';
import { startBatch } from './generate';
import { annotateImage, batchGenerator, type BatchAmgOptions, type Sa1bRecord } from './sa1b';
import type { BatchProgress, BatchSummary } from './types';

type Bull = typeof import('bullmq');
type BullJob = import('bullmq').Job<AutoJobData, Sa1bRecord>;

/** Default BullMQ queue name of `auto --queue` and `worker`. */
export const DEFAULT_QUEUE_NAME = 'sam2-tfjs-auto';

/** What a job carries: everything a worker needs, no file paths. */
export interface AutoJobData {
  /** Layout version of this data; workers refuse others. */
  v: 1;
  /** The image's path relative to its input directory (becomes `file_name`). */
  relPath: string;
  /** PNG/JPEG bytes, base64. */
  image: string;
  amg: BatchAmgOptions;
}

/** Host, port, db (and credentials) of a `redis://HOST:PORT[/DB]` (or `rediss://`) URL. */
export interface RedisConnection {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls?: object;
}

export function parseRedisUrl(url: string): RedisConnection {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    u = new URL('invalid://');
  }
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0;
  if ((u.protocol !== 'redis:' && u.protocol !== 'rediss:') || !u.hostname || !Number.isInteger(db) || db < 0) {
    throw new Sam2Error('INPUT', `The queue must be a URL like redis://HOST:PORT[/DB], got "${url}".`);
  }
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port ? Number(u.port) : 6379,
    db,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

async function loadBullmq(): Promise<Bull> {
  try {
    return await import('bullmq');
  } catch (e) {
    throw new Sam2Error(
      'CONFIG',
      `The job queue needs the bullmq package (npm install bullmq ioredis): ${(e as Error).message.split('\n')[0]}`,
    );
  }
}

/** Resolves with `p`, or with `fallback` after `ms`. */
async function within<T>(p: Promise<T>, ms: number, fallback: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback()), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A connected Queue, or a NETWORK error after 10 s. Checked with a Queue first because a
 * QueueEvents or Worker that never connected does not close.
 */
async function openQueue<T>(bull: Bull, name: string, conn: RedisConnection) {
  // bounded reconnect delays; maxRetriesPerRequest null as BullMQ requires for blocking calls
  const connection = {
    ...conn,
    maxRetriesPerRequest: null,
    retryStrategy: (times: number) => Math.min(times * 200, 2000),
  };
  const queue = new bull.Queue<T, Sa1bRecord>(name, { connection });
  queue.on('error', () => undefined); // connection errors surface through the awaited calls
  const ok = await within(
    queue.waitUntilReady().then(() => true),
    10_000,
    () => false,
  );
  if (!ok) {
    await queue.close().catch(() => undefined);
    throw new Sam2Error(
      'NETWORK',
      `Cannot reach Redis at ${conn.host}:${conn.port} within 10 s: is redis-server running there?`,
    );
  }
  return { queue, connection };
}

/** Closes BullMQ objects, and drops their connections if closing stalls (Redis gone). */
async function closeAll(objs: { close(): Promise<void>; disconnect(): Promise<void> }[]): Promise<void> {
  const closed = await within(
    Promise.allSettled(objs.map((o) => o.close())).then(() => true),
    10_000,
    () => false,
  );
  if (!closed) await Promise.allSettled(objs.map((o) => o.disconnect()));
}

/**
 * Job id of an image: its relative path plus a hash of its bytes and options, so re-running
 * the same batch finds its jobs instead of adding new ones, and changed images or options
 * never reuse an old result. (BullMQ ids cannot contain ':'.)
 */
export function jobIdFor(relPath: string, bytes: Uint8Array, amg: BatchAmgOptions): string {
  const h = crypto.createHash('sha256').update(bytes).update(JSON.stringify(amg)).digest('hex').slice(0, 16);
  return `${relPath.replace(/%/g, '%25').replace(/:/g, '%3A')}#${h}`;
}

export interface EnqueueFilesOptions {
  /** `redis://HOST:PORT[/DB]`. */
  queue: string;
  /** Folder for the outputs, as in generateForFiles. */
  outDir: string;
  amg?: BatchAmgOptions;
  /** Recompute images whose output is already complete (default false). */
  overwrite?: boolean;
  /** BullMQ queue name (default `sam2-tfjs-auto`); workers must use the same. */
  queueName?: string;
  /** Tries per job for errors other than an undecodable image or bad options (default 3). */
  attempts?: number;
  /** How often to re-check jobs whose completion event may have been missed, in ms (default 15000). */
  sweepInterval?: number;
  onProgress?: (p: BatchProgress) => void;
}

/**
 * Enqueues one BullMQ job per image under `inputs` whose output is not complete yet (or every
 * image with `overwrite`), waits for the workers (`runWorker` / `sam2-tfjs worker`), writes
 * each result as `generateForFiles` would, and resolves when every image is written or failed.
 * Re-running after an interruption picks up the same jobs (and results already computed).
 */
export async function enqueueFiles(inputs: string[], options: EnqueueFilesOptions): Promise<BatchSummary> {
  const conn = parseRedisUrl(options.queue);
  const { amg, todo, record, finish } = startBatch(inputs, options);
  if (!todo.length) return finish();

  const bull = await loadBullmq();
  const name = options.queueName ?? DEFAULT_QUEUE_NAME;
  const { queue, connection } = await openQueue<AutoJobData>(bull, name, conn);
  const events = new bull.QueueEvents(name, { connection });
  events.on('error', () => undefined);
  let sweeper: NodeJS.Timeout | undefined;
  try {
    await events.waitUntilReady();
    /** Jobs not settled yet, by id. */
    const pending = new Map<string, { file: string; relPath: string; output: string; t0: number }>();
    let wake: () => void = () => undefined;
    const settle = async (id: string, job?: BullJob) => {
      const p = pending.get(id);
      if (!p) return;
      job ??= (await queue.getJob(id)) as BullJob | undefined;
      const st = job ? await job.getState() : 'unknown';
      if (st !== 'completed' && st !== 'failed') return;
      if (!pending.delete(id)) return; // settled meanwhile by the other path
      const base = { file: p.file, relPath: p.relPath, output: p.output, seconds: (Date.now() - p.t0) / 1000 };
      if (st === 'completed') {
        const rec = job!.returnvalue;
        if (rec?.image?.file_name !== p.relPath || !Array.isArray(rec.annotations)) {
          record({ ...base, status: 'failed', error: `job ${id} returned no annotations for ${p.relPath}` });
        } else {
          try {
            writeFileAtomic(p.output, JSON.stringify(rec));
            record({ ...base, status: 'written', masks: rec.annotations.length });
          } catch (e) {
            record({ ...base, status: 'failed', error: (e as Error).message.split('\n')[0] });
          }
        }
      } else {
        record({ ...base, status: 'failed', error: (job!.failedReason || `job ${id} failed`).split('\n')[0] });
      }
      await job!.remove().catch(() => undefined); // frees the image bytes and result in Redis
      wake();
    };
    const settleLogged = (id: string) => void settle(id).catch(() => undefined); // the sweep retries
    const add = (id: string, relPath: string, bytes: Buffer) =>
      queue.add(
        'auto',
        { v: 1, relPath, image: bytes.toString('base64'), amg },
        {
          jobId: id,
          attempts: options.attempts ?? 3,
          backoff: { type: 'exponential', delay: 5000 },
          removeOnComplete: false,
          removeOnFail: false,
        },
      );
    events.on('completed', ({ jobId }) => settleLogged(jobId));
    events.on('failed', ({ jobId }) => settleLogged(jobId));

    for (const img of todo) {
      const output = outputPath(options.outDir, img);
      let bytes: Buffer;
      try {
        bytes = fs.readFileSync(img.file);
      } catch (e) {
        record({
          file: img.file,
          relPath: img.relPath,
          output,
          status: 'failed',
          seconds: 0,
          error: `Cannot read image file "${img.file}": ${(e as NodeJS.ErrnoException).code ?? e}.`,
        });
        continue;
      }
      const id = jobIdFor(img.relPath, bytes, amg);
      const old = (await queue.getJob(id)) as BullJob | undefined;
      if (old) {
        const st = await old.getState();
        // a failed job is retried by a re-run; --overwrite also redoes a finished one
        if (st === 'failed' || (st === 'completed' && options.overwrite)) await old.remove();
      }
      pending.set(id, { file: img.file, relPath: img.relPath, output, t0: Date.now() });
      await add(id, img.relPath, bytes);
      // an existing job (from an interrupted run) may be finished already
      await settle(id);
    }

    const sweepMs = options.sweepInterval ?? 15_000;
    while (pending.size) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        sweeper = setTimeout(resolve, sweepMs);
      });
      clearTimeout(sweeper);
      for (const id of [...pending.keys()]) {
        const job = await queue.getJob(id);
        const p = pending.get(id);
        // gone without our seeing it settle: removed by another producer of the same images
        if (!job && p) await add(id, p.relPath, fs.readFileSync(p.file));
        else if (job) await settle(id, job as BullJob);
      }
    }
  } finally {
    clearTimeout(sweeper);
    await closeAll([events, queue]);
  }
  return finish();
}

/** What a worker reports (the library never prints; the CLI turns these into lines). */
export type WorkerEvent =
  | { type: 'ready'; queue: string; concurrency: number }
  | { type: 'active'; jobId: string; relPath: string; attempt: number }
  | { type: 'completed'; jobId: string; relPath: string; masks: number; seconds: number }
  | { type: 'failed'; jobId: string; relPath: string; error: string; willRetry: boolean }
  | { type: 'stalled'; jobId: string }
  | { type: 'error'; error: string }
  | { type: 'stopping' };

export interface RunWorkerOptions {
  /** `redis://HOST:PORT[/DB]`. */
  queue: string;
  /** A loaded model (left to the caller), or a loader called once before taking jobs (disposed at the end). */
  model: SamModel | (() => Promise<SamModel>);
  /** Jobs processed at once (default 1: on wasm they share one thread anyway). */
  concurrency?: number;
  /** BullMQ queue name (default `sam2-tfjs-auto`). */
  queueName?: string;
  /**
   * How long a job's lock lasts without renewal, in ms (default 300000). The lock is renewed
   * every quarter of it while the job runs; a worker that dies stops renewing, and its job goes
   * back to the queue once the lock has expired. Model calls block the event loop (and so the
   * renewal): keep this well above the slowest single encoder call, or jobs run twice.
   */
  lockDuration?: number;
  /** How often this worker looks for jobs of dead workers, in ms (default min(30000, lockDuration)). */
  stalledInterval?: number;
  /** Aborting stops taking jobs, finishes the current ones, and resolves the returned promise. */
  signal?: AbortSignal;
  onEvent?: (e: WorkerEvent) => void;
}

/** Per-worker totals, returned when it stops. */
export interface WorkerSummary {
  completed: number;
  failed: number;
}

/** Sam2Error codes that no retry can fix: the job fails at once with the message. */
const PERMANENT = new Set(['IMAGE', 'INPUT', 'CONFIG']);

/**
 * Takes `auto --queue` jobs from Redis until `signal` aborts: loads the model once, segments
 * each job's image and returns its SA-1B record to the producer. An undecodable image (or bad
 * options) fails its job without retries; other errors are retried as the job allows.
 * @example
 * const stop = new AbortController();
 * process.once('SIGTERM', () => stop.abort());
 * await runWorker({ queue: 'redis://10.0.0.5:6379', model: () => loadSam2('weights/sam2.1_hiera_tiny'), signal: stop.signal });
 */
export async function runWorker(options: RunWorkerOptions): Promise<WorkerSummary> {
  const conn = parseRedisUrl(options.queue);
  const concurrency = options.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new Sam2Error('INPUT', `concurrency must be a positive integer, got ${concurrency}.`);
  const lockDuration = options.lockDuration ?? 300_000;
  if (!(lockDuration >= 1000))
    throw new Sam2Error('INPUT', `lockDuration must be at least 1000 ms, got ${lockDuration}.`);
  const bull = await loadBullmq();
  const name = options.queueName ?? DEFAULT_QUEUE_NAME;
  const probe = await openQueue(bull, name, conn); // before loading the model: fail fast
  await probe.queue.close();
  const emit = options.onEvent ?? (() => undefined);
  const owned = typeof options.model === 'function';
  const model = typeof options.model === 'function' ? await options.model() : options.model;
  const summary: WorkerSummary = { completed: 0, failed: 0 };
  try {
    if (options.signal?.aborted) return summary;
    const worker = new bull.Worker<AutoJobData, Sa1bRecord>(
      name,
      async (job) => {
        const d = job.data;
        if (d?.v !== 1 || typeof d.image !== 'string')
          throw new bull.UnrecoverableError(
            'Job data is not from a compatible sam2-tfjs version: run the same version for `auto --queue` and `worker`.',
          );
        emit({ type: 'active', jobId: job.id!, relPath: d.relPath, attempt: job.attemptsMade + 1 });
        let gen;
        try {
          gen = batchGenerator(model, d.amg);
          return await annotateImage(gen, Buffer.from(d.image, 'base64'), d.relPath);
        } catch (e) {
          if (e instanceof Sam2Error && PERMANENT.has(e.code)) throw new bull.UnrecoverableError(e.message);
          throw e;
        } finally {
          gen?.dispose();
        }
      },
      {
        connection: probe.connection,
        concurrency,
        lockDuration,
        // renewing at a quarter (not BullMQ's half) leaves 3/4 of the lock for model calls that block the event loop
        lockRenewTime: lockDuration / 4,
        stalledInterval: options.stalledInterval ?? Math.min(30_000, lockDuration),
        // a job may outlive two dead workers before it is failed as stalled
        maxStalledCount: 2,
        autorun: false,
      },
    );
    worker.on('failed', (job, err) => {
      if (!job) return;
      summary.failed++;
      const willRetry = !(err instanceof bull.UnrecoverableError) && job.attemptsMade < (job.opts.attempts ?? 1);
      emit({
        type: 'failed',
        jobId: job.id!,
        relPath: job.data?.relPath,
        error: err.message.split('\n')[0],
        willRetry,
      });
    });
    // reported once BullMQ has recorded the result (a job whose lock was lost is not)
    worker.on('completed', (job, rec) => {
      summary.completed++;
      const seconds = ((job.finishedOn ?? Date.now()) - (job.processedOn ?? Date.now())) / 1000;
      emit({ type: 'completed', jobId: job.id!, relPath: job.data.relPath, masks: rec.annotations.length, seconds });
    });
    worker.on('stalled', (jobId) => emit({ type: 'stalled', jobId }));
    worker.on('error', (err) => emit({ type: 'error', error: err.message.split('\n')[0] }));
    await worker.waitUntilReady();
    const stopped = new Promise<void>((resolve) => {
      if (!options.signal) return;
      if (options.signal.aborted) resolve();
      options.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    const running = worker.run();
    emit({ type: 'ready', queue: options.queue, concurrency });
    await Promise.race([stopped, running]);
    emit({ type: 'stopping' });
    await worker.close(); // waits for the jobs in progress
    await running.catch(() => undefined);
  } finally {
    if (owned) model.dispose();
  }
  return summary;
}
