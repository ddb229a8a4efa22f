/**
 * `sam2-tfjs export-onnx`: writes the ONNX models of a ported folder (and the JSON that
 * describes their inputs and outputs) for ONNX Runtime Web or any other ONNX runtime. Needs no
 * ONNX Runtime and no Python: the graphs are emitted from our TF.js layers.
 */
import * as path from 'path';
import type { BackendChoice } from './backend';
import { loadSam2 } from './load';
import { Sam2Error } from './errors';
import { MANIFEST_FILE, onnxGraphsFor, writeOnnxGraphs, type OnnxManifest } from './onnx/graphs';

export interface ExportOnnxOptions {
  /** Input resolution baked into the graphs (default: the ported config's, 1024). */
  imageSize?: number;
  backend?: BackendChoice;
}

export interface ExportOnnxResult {
  files: string[];
  manifest: OnnxManifest;
  /** True when the graphs came from the cache next to the weights. */
  cached: boolean;
}

/** Builds (or reuses the cached) graphs of the ported weights in `dirOrUrl` and writes them to `outDir`. */
export async function exportOnnx(
  dirOrUrl: string,
  outDir: string,
  options: ExportOnnxOptions = {},
): Promise<ExportOnnxResult> {
  const model = await loadSam2(dirOrUrl, { ...options, executor: 'tfjs' });
  if (model.kind === 'sam1') {
    model.dispose();
    throw new Sam2Error('CONFIG', `${model.config.name} is SAM 1: ONNX export covers SAM 2 models only.`);
  }
  try {
    const graphs = onnxGraphsFor(model, dirOrUrl);
    writeOnnxGraphs(graphs, outDir);
    const files = [...Object.values(graphs.manifest.models).map((m) => m.file), MANIFEST_FILE].map((f) =>
      path.join(outDir, f),
    );
    return { files, manifest: graphs.manifest, cached: graphs.cached };
  } finally {
    model.dispose();
  }
}
