/**
 * How the CLI shows a batch run: a redrawn progress bar on a TTY, one plain line per image
 * otherwise (logs, CI, pipes), then a summary. The library only reports; this draws.
 */
import type { BatchProgress, BatchSummary } from '../batch/types';

/** The streams drawn on (process.stdout / process.stderr, or fakes in tests). */
export interface Out {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** 75 -> "1m15s", 3725 -> "1h02m". */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  s = Math.round(s);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function rate(p: BatchProgress): string {
  if (!p.done || !p.elapsed) return '';
  const perMin = (p.done / p.elapsed) * 60;
  const left = ((p.total - p.done) / p.done) * p.elapsed;
  return `  ${perMin >= 10 ? perMin.toFixed(0) : perMin.toFixed(1)} img/min  ${p.done < p.total ? `~${formatDuration(left)} left` : ''}`;
}

/** Returns the onProgress callback of a run; lines go to `out`, the bar to `err` when it is a TTY. */
export function batchProgressView(out: Out, err: Out, what = 'images'): (p: BatchProgress) => void {
  const tty = !!err.isTTY;
  let drawn = false;
  const clear = () => {
    if (drawn) err.write('\r\x1b[K');
    drawn = false;
  };
  const line = (p: BatchProgress) => {
    const img = p.image!;
    const head = `[${p.done}/${p.total}] ${img.relPath}`;
    return img.status === 'written'
      ? `${head}: ${img.masks} masks -> ${img.output} (${img.seconds.toFixed(1)} s)`
      : `${head}: FAILED: ${img.error}`;
  };
  return (p) => {
    if (p.done === 0 && !p.current && !p.image) {
      const skipped = p.skipped ? `, ${p.skipped} already done (skipped)` : '';
      out.write(`${p.total} ${what} to do${skipped}\n`);
    }
    if (!tty) {
      if (p.image) out.write(`${line(p)}\n`);
      return;
    }
    // on a TTY failures stay on screen above the bar; successes only move the bar
    if (p.image?.status === 'failed') {
      clear();
      err.write(`${line(p)}\n`);
    }
    if (!p.total) return;
    const w = 30;
    const f = Math.round((p.done / p.total) * w);
    const cur =
      p.current && p.done < p.total
        ? `  (${p.current.relPath}: ${p.current.done}/${p.current.total} point batches)`
        : '';
    let bar = `[${'#'.repeat(f)}${'.'.repeat(w - f)}] ${p.done}/${p.total} ${what}${p.failed ? `, ${p.failed} failed` : ''}${rate(p)}${cur}`;
    if (err.columns && bar.length >= err.columns) bar = bar.slice(0, err.columns - 1);
    err.write(`\r\x1b[K${bar}`);
    drawn = true;
    if (p.done === p.total) {
      err.write('\n');
      drawn = false;
    }
  };
}

/** The closing lines; returns whether every image succeeded. */
export function printSummary(s: BatchSummary, outDir: string, out: Out, err: Out): boolean {
  out.write(
    `${s.written} written, ${s.skipped} skipped (already done), ${s.failed.length} failed, of ${s.found} images in ${formatDuration(s.seconds)} -> ${outDir}\n`,
  );
  for (const f of s.failed) err.write(`failed: ${f.file}: ${f.error}\n`);
  return s.failed.length === 0;
}
