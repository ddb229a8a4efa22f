/** Local batch runs: automatic masks for every image under the inputs, resumable. */
import type { SamModel } from '../model/sam_model';
import type { AutomaticMaskGenerator } from '../predictor/automatic_mask_generator';
import { findImages, isCompleteOutput, outputPath, writeFileAtomic, type BatchImage } from './files';
import { annotateImage, batchGenerator, checkAmgOptions, type BatchAmgOptions } from './sa1b';
import type { BatchImageResult, BatchProgress, BatchSummary } from './types';

export interface GenerateForFilesOptions {
  /** Folder for the outputs: `<outDir>/<relative path>.json`. */
  outDir: string;
  /**
   * A loaded model (left to the caller), or a loader called once when the first image needs
   * computing (that model is disposed at the end): a run with nothing to do loads nothing.
   */
  model: SamModel | (() => Promise<SamModel>);
  /** AutomaticMaskGenerator options (the output is always COCO RLE). */
  amg?: BatchAmgOptions;
  /** Recompute images whose output is already complete (default false: skip them). */
  overwrite?: boolean;
  /** Called at the start, during each image and after each image. */
  onProgress?: (p: BatchProgress) => void;
}

/** The images of a run split into those to compute and those already done. */
export function planBatch(
  inputs: string[],
  outDir: string,
  overwrite = false,
): { todo: BatchImage[]; skipped: BatchImage[] } {
  const todo: BatchImage[] = [];
  const skipped: BatchImage[] = [];
  for (const img of findImages(inputs)) {
    (!overwrite && isCompleteOutput(outputPath(outDir, img), img.relPath) ? skipped : todo).push(img);
  }
  return { todo, skipped };
}

/**
 * What a local and a queued run share: the options check, the plan, progress events and the
 * summary. `record` counts one finished image and reports it; `finish` stamps the run time.
 */
export function startBatch(
  inputs: string[],
  options: { outDir: string; amg?: BatchAmgOptions; overwrite?: boolean; onProgress?: (p: BatchProgress) => void },
) {
  const started = Date.now();
  const amg = options.amg ?? {};
  checkAmgOptions(amg);
  const { todo, skipped } = planBatch(inputs, options.outDir, options.overwrite);
  const state: BatchProgress = { total: todo.length, done: 0, failed: 0, skipped: skipped.length, elapsed: 0 };
  const report = (extra: Partial<BatchProgress> = {}) =>
    options.onProgress?.({ ...state, elapsed: (Date.now() - started) / 1000, ...extra });
  report();
  const summary: BatchSummary = {
    found: todo.length + skipped.length,
    written: 0,
    skipped: skipped.length,
    failed: [],
    seconds: 0,
  };
  const record = (r: BatchImageResult) => {
    if (r.status === 'written') summary.written++;
    else {
      summary.failed.push(r);
      state.failed++;
    }
    state.done++;
    report({ image: r });
  };
  const finish = (): BatchSummary => {
    summary.seconds = (Date.now() - started) / 1000;
    return summary;
  };
  return { amg, todo, report, record, finish };
}

/**
 * Segments everything in each image under `inputs` (image files and directories, searched
 * recursively for .jpg/.jpeg/.png) and writes one SA-1B JSON per image, atomically. Images
 * whose output is complete are skipped unless `overwrite`. An image that fails (unreadable,
 * undecodable, ...) is reported in the summary and the run goes on; bad options or inputs
 * throw a Sam2Error before any work.
 * @example
 * const summary = await generateForFiles(['photos/'], { outDir: 'masks/', model: () => loadSam2('weights/sam2.1_hiera_tiny') });
 */
export async function generateForFiles(inputs: string[], options: GenerateForFilesOptions): Promise<BatchSummary> {
  const { amg, todo, report, record, finish } = startBatch(inputs, options);
  let model: SamModel | undefined;
  let gen: AutomaticMaskGenerator | undefined;
  const owned = typeof options.model === 'function';
  try {
    for (const img of todo) {
      if (!gen) {
        model = typeof options.model === 'function' ? await options.model() : options.model;
        gen = batchGenerator(model, amg);
      }
      const t0 = Date.now();
      const out = outputPath(options.outDir, img);
      let result: BatchImageResult;
      try {
        const rec = await annotateImage(gen, img.file, img.relPath, (done, total) =>
          report({ current: { relPath: img.relPath, done, total } }),
        );
        writeFileAtomic(out, JSON.stringify(rec));
        result = {
          file: img.file,
          relPath: img.relPath,
          output: out,
          status: 'written',
          masks: rec.annotations.length,
          seconds: (Date.now() - t0) / 1000,
        };
      } catch (e) {
        const error = (e as Error).message.split('\n')[0];
        result = {
          file: img.file,
          relPath: img.relPath,
          output: out,
          status: 'failed',
          error,
          seconds: (Date.now() - t0) / 1000,
        };
      }
      record(result);
    }
  } finally {
    gen?.dispose();
    if (owned) model?.dispose();
  }
  return finish();
}
