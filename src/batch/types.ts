/** Progress and result types shared by local batch runs and queued runs. */

/** What became of one image. */
export interface BatchImageResult {
  /** The image file. */
  file: string;
  /** Its path relative to its input directory. */
  relPath: string;
  /** The JSON file written (or that would have been). */
  output: string;
  status: 'written' | 'failed';
  /** Masks found (when written). */
  masks?: number;
  /** One-line reason (when failed). */
  error?: string;
  /** Seconds from the start of this image (local) or from enqueueing (queue) to its end. */
  seconds: number;
}

/** Reported at the start of a run, after every image, and (locally) during an image. */
export interface BatchProgress {
  /** Images to compute in this run: found minus skipped. */
  total: number;
  /** Images finished in this run (written or failed). */
  done: number;
  failed: number;
  /** Images whose output was already complete (not counted in total). */
  skipped: number;
  /** Seconds since the run started. */
  elapsed: number;
  /** The image that just finished, if this report is for one. */
  image?: BatchImageResult;
  /** Point batches decoded of the image being computed (local runs only). */
  current?: { relPath: string; done: number; total: number };
}

export interface BatchSummary {
  /** Images found under the inputs. */
  found: number;
  written: number;
  skipped: number;
  failed: BatchImageResult[];
  seconds: number;
}
