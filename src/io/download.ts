/**
 * Downloading the official checkpoints (the URLs of the reference's download_ckpts.sh) with
 * resume of partial downloads (HTTP Range on a `.part` file) and size checks, then porting.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Sam2Error } from '../errors';
import { MODEL_NAMES } from '../config';
import { SAM1_CHECKPOINT_FILES, SAM1_MODEL_NAMES } from '../config_sam1';
import { readCheckpoint } from './torch_checkpoint';

/** Environment variable naming the folder that holds downloaded and ported weights (default `weights`, relative to the working directory). */
export const WEIGHTS_DIR_ENV = 'SAM2_TFJS_WEIGHTS_DIR';

/** Where official model names live: `$SAM2_TFJS_WEIGHTS_DIR`, else `weights/` under the working directory. */
export function weightsDir(): string {
  return process.env[WEIGHTS_DIR_ENV] || 'weights';
}

/** True when `file` is a checkpoint whose zip structure is whole (a truncated or partial file is not). */
export function isCompleteCheckpoint(file: string): boolean {
  if (!fs.existsSync(file)) return false;
  try {
    readCheckpoint(file).close();
    return true;
  } catch {
    return false;
  }
}

const BASES: Record<string, string> = {
  sam2: 'https://dl.fbaipublicfiles.com/segment_anything_2/072824',
  'sam2.1': 'https://dl.fbaipublicfiles.com/segment_anything_2/092824',
  sam1: 'https://dl.fbaipublicfiles.com/segment_anything',
};

/** Every model name `download` and `--model` know: SAM 2 / 2.1, then SAM 1 (`sam_vit_b|l|h`). */
export const DOWNLOADABLE_MODELS: readonly string[] = [...MODEL_NAMES, ...SAM1_MODEL_NAMES];

/** Environment variable replacing the download base URL (a mirror, or a test server). */
export const DOWNLOAD_BASE_ENV = 'SAM2_TFJS_DOWNLOAD_BASE';

/** The official URL of a model's checkpoint (or under `baseUrl`). */
export function checkpointUrl(model: string, baseUrl?: string): string {
  if (!DOWNLOADABLE_MODELS.includes(model)) {
    throw new Sam2Error('CONFIG', `Unknown model "${model}". Known models: ${DOWNLOADABLE_MODELS.join(', ')}.`);
  }
  const sam1File = SAM1_CHECKPOINT_FILES[model];
  if (sam1File) return `${(baseUrl ?? process.env[DOWNLOAD_BASE_ENV] ?? BASES.sam1).replace(/\/$/, '')}/${sam1File}`;
  const base = baseUrl ?? process.env[DOWNLOAD_BASE_ENV] ?? BASES[model.startsWith('sam2.1') ? 'sam2.1' : 'sam2'];
  return `${base.replace(/\/$/, '')}/${model}.pt`;
}

export interface DownloadOptions {
  baseUrl?: string;
  /** Called with bytes received so far and the total (when known). */
  onProgress?: (received: number, total: number | undefined) => void;
  /** Give up when the server does not answer within this many ms (default 15000). */
  timeoutMs?: number;
  /** Give up (keeping the partial file) when no data arrives for this many ms (default 60000). */
  stallMs?: number;
}

/** Marks an error after which the partial file must not be kept. */
function dropPart(e: Sam2Error, drop = true): Sam2Error {
  if (drop) (e as Sam2Error & { dropPart?: boolean }).dropPart = true;
  return e;
}

function offline(url: string, why: string, file: string): Sam2Error {
  return new Sam2Error(
    'NETWORK',
    `Cannot download ${url} (${why}). Download it by hand (e.g. with a browser or curl) to ${file}, then run: npx sam2-tfjs port ${file}`,
  );
}

/**
 * Downloads `model`'s checkpoint to `file`, resuming from `file.part` when present. Checks the
 * size the server announces; a transfer that ends early keeps `.part` for the next try.
 */
export async function downloadCheckpoint(model: string, file: string, options: DownloadOptions = {}): Promise<string> {
  const url = checkpointUrl(model, options.baseUrl);
  // a complete file already there (downloaded before, or placed by hand) is used as it is
  if (isCompleteCheckpoint(file)) return file;
  const part = `${file}.part`;
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  // Each process writes its own temporary file: it takes over `.part` (to resume) with an atomic
  // rename, so two downloads of the same model never write into one file; the finished file
  // reaches its final name by another atomic rename, so that name never holds a partial file.
  const mine = `${file}.part-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  let have = 0;
  try {
    fs.renameSync(part, mine);
    have = fs.statSync(mine).size;
  } catch {
    have = 0; // no partial download (or another process took it)
  }
  try {
    return await transfer(url, model, file, mine, have, options);
  } catch (e) {
    // keep what was received for the next try, unless another process left a longer one
    if (fs.existsSync(mine)) {
      const size = fs.statSync(mine).size;
      const other = fs.existsSync(part) ? fs.statSync(part).size : -1;
      if (size > 0 && size > other && !(e as { dropPart?: boolean }).dropPart) fs.renameSync(mine, part);
      else fs.rmSync(mine, { force: true });
    }
    throw e;
  }
}

async function transfer(
  url: string,
  model: string,
  file: string,
  part: string,
  have: number,
  options: DownloadOptions,
): Promise<string> {
  // One controller for the whole transfer: a short deadline for the answer (fail fast offline),
  // then a stall watchdog re-armed by every chunk, so a long download is never cut by a timer.
  const abort = new AbortController();
  let timer = setTimeout(() => abort.abort(new Error('no answer')), options.timeoutMs ?? 15000);
  const watchdog = () => {
    clearTimeout(timer);
    timer = setTimeout(() => abort.abort(new Error('no data received for a while')), options.stallMs ?? 60000);
  };
  let res: Response;
  try {
    res = await fetch(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {}, signal: abort.signal });
  } catch (e) {
    clearTimeout(timer);
    const err = e as Error & { cause?: { code?: string } };
    throw offline(url, err.cause?.code ?? (abort.signal.aborted ? 'no answer' : err.message), file);
  }
  clearTimeout(timer);
  if (res.status === 416 && have > 0) {
    // the part file is already complete (or larger than the file): start over to be safe
    fs.rmSync(part);
    return transfer(url, model, file, part, 0, options);
  }
  if (res.status !== 200 && res.status !== 206) throw offline(url, `HTTP ${res.status}`, file);
  let total: number | undefined;
  const len = res.headers.get('content-length');
  if (res.status === 206) {
    const m = /^bytes (\d+)-\d+\/(\d+)$/.exec(res.headers.get('content-range') ?? '');
    // a range other than the one asked for, or a length that disagrees with it, would corrupt the file
    if (!m || Number(m[1]) !== have || (len !== null && Number(len) !== Number(m[2]) - have)) {
      await res.body?.cancel();
      fs.rmSync(part);
      throw dropPart(
        new Sam2Error(
          'NETWORK',
          `The server answered the resume of ${url} inconsistently (Content-Range "${res.headers.get('content-range')}", Content-Length ${len}, expected bytes from ${have}); the partial file was removed, run the same command again.`,
        ),
      );
    }
    total = Number(m[2]);
  } else {
    have = 0; // the server ignored the range: start from the beginning
    total = len !== null ? Number(len) : undefined;
  }
  const fd = fs.openSync(part, res.status === 206 ? 'a' : 'w');
  let received = have;
  try {
    watchdog();
    const reader = res.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      watchdog();
      fs.writeSync(fd, value);
      received += value.length;
      options.onProgress?.(received, total);
    }
  } catch (e) {
    const why = abort.signal.aborted ? (abort.signal.reason as Error).message : (e as Error).message;
    throw new Sam2Error(
      'NETWORK',
      `Download of ${url} was interrupted at ${received} bytes (${why}); run the same command again to resume.`,
    );
  } finally {
    clearTimeout(timer);
    fs.closeSync(fd);
  }
  if (total !== undefined && received !== total) {
    if (received > total) fs.rmSync(part);
    throw dropPart(
      new Sam2Error(
        'NETWORK',
        received < total
          ? `Download of ${url} stopped at ${received} of ${total} bytes; run the same command again to resume.`
          : `Download of ${url} has ${received} bytes but the server announced ${total}; the partial file was removed, try again.`,
      ),
      received > total,
    );
  }
  fs.renameSync(part, file);
  return file;
}
