/**
 * The ONNX models of a loaded Sam2Model, built on demand and cached next to the ported weights
 * (`<dir>/onnx/`), with a JSON manifest that describes every input and output.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Sam2Model } from '../model/sam2';
import { OPSET, type ValueInfo } from './builder';
import {
  GRAPH_VERSION,
  buildImageEncoder,
  buildMemoryAttention,
  buildMemoryEncoder,
  buildPromptDecoderNoMask,
  buildPromptMaskDecoder,
  type BuiltModel,
} from './models';

export const MANIFEST_FILE = 'sam2_onnx.json';

export interface OnnxManifest {
  format: 'sam2-tfjs-onnx';
  graphVersion: number;
  opset: number;
  model: string;
  imageSize: number;
  /** Identifies the weights the graphs were built from (model.json size and mtime). */
  weightsStamp?: string;
  models: Partial<Record<BuiltModel['name'], { file: string; inputs: ValueInfo[]; outputs: ValueInfo[] }>> &
    Record<'image_encoder' | 'prompt_mask_decoder', { file: string; inputs: ValueInfo[]; outputs: ValueInfo[] }>;
  notes: string[];
}

export interface OnnxGraphs {
  imageEncoder: Uint8Array;
  promptMaskDecoder: Uint8Array;
  /** The decoder for prompts without a mask input, fed the image encoder's image-side projections. */
  promptDecoderNoMask?: Uint8Array;
  /** Video tracking's memory encoder and memory attention (models built with video parts). */
  memoryEncoder?: Uint8Array;
  memoryAttention?: Uint8Array;
  manifest: OnnxManifest;
  /** Where they were read from or written to, if anywhere. */
  dir?: string;
  /** True when read from a cache. */
  cached: boolean;
}

const NOTES = [
  'Feature maps are NHWC. image: the image resized to imageSize x imageSize, scaled to [0, 1], normalized with mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).',
  'point_coords are in model-input pixels (0..imageSize); a box is two points with labels 2 (top-left) and 3 (bottom-right); the graph appends the padding point itself.',
  'low_res_masks holds all four mask tokens: multimask output is masks 1..3; single-mask output is mask 0 (or, as SAM 2 does, the best multimask one when mask 0 is unstable).',
  "Without a mask prompt feed mask_input zeros [1, s, s, 1] and has_mask_input [0], or use prompt_decoder_no_mask: the same outputs, fed the image encoder's token_to_image_k, token_to_image_v and image_to_token_q instead of computing them for every prompt.",
  'Video: memory_encoder takes vision_features (image_encoder) and the mask (sigmoid, x20, -10); memory_attention takes the frame tokens + 0.1 x their sine encoding and, per layer, the memory bank keys already projected and rotated (RoPE), transposed [d, M], with the bank values [M, 64].',
];

/** Stamp of a ported folder's weights, so a re-port invalidates the cache. */
export function weightsStamp(dir: string): string | undefined {
  try {
    const st = fs.statSync(path.join(dir, 'model.json'));
    return `${st.size}:${Math.round(st.mtimeMs)}`;
  } catch {
    return undefined;
  }
}

function manifestFor(model: Sam2Model, built: BuiltModel[], stamp?: string): OnnxManifest {
  const models = {} as OnnxManifest['models'];
  for (const m of built) models[m.name] = { file: `${m.name}.onnx`, inputs: m.inputs, outputs: m.outputs };
  return {
    format: 'sam2-tfjs-onnx',
    graphVersion: GRAPH_VERSION,
    opset: OPSET,
    model: model.config.name,
    imageSize: model.config.imageSize,
    weightsStamp: stamp,
    models,
    notes: NOTES,
  };
}

/** Builds every model in memory (the video ones when the model has its video parts). */
export function buildOnnxGraphs(model: Sam2Model, stamp?: string): OnnxGraphs {
  const enc = buildImageEncoder(model);
  const dec = buildPromptMaskDecoder(model);
  const noMask = buildPromptDecoderNoMask(model);
  const video = model.video ? [buildMemoryEncoder(model), buildMemoryAttention(model)] : [];
  return {
    imageEncoder: enc.bytes,
    promptMaskDecoder: dec.bytes,
    promptDecoderNoMask: noMask.bytes,
    memoryEncoder: video[0]?.bytes,
    memoryAttention: video[1]?.bytes,
    manifest: manifestFor(model, [enc, dec, noMask, ...video], stamp),
    cached: false,
  };
}

/** Writes graphs and their manifest to `dir` (created if needed). */
export function writeOnnxGraphs(graphs: OnnxGraphs, dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const m = graphs.manifest.models;
  fs.writeFileSync(path.join(dir, m.image_encoder.file), graphs.imageEncoder);
  fs.writeFileSync(path.join(dir, m.prompt_mask_decoder.file), graphs.promptMaskDecoder);
  if (graphs.promptDecoderNoMask && m.prompt_decoder_no_mask)
    fs.writeFileSync(path.join(dir, m.prompt_decoder_no_mask.file), graphs.promptDecoderNoMask);
  if (graphs.memoryEncoder && m.memory_encoder)
    fs.writeFileSync(path.join(dir, m.memory_encoder.file), graphs.memoryEncoder);
  if (graphs.memoryAttention && m.memory_attention)
    fs.writeFileSync(path.join(dir, m.memory_attention.file), graphs.memoryAttention);
  // manifest last: its presence marks a complete cache
  fs.writeFileSync(path.join(dir, MANIFEST_FILE), JSON.stringify(graphs.manifest, null, 2) + '\n');
}

/** Reads graphs from `dir` when its manifest matches this model and weights, else undefined. */
export function readCachedGraphs(model: Sam2Model, dir: string, stamp?: string): OnnxGraphs | undefined {
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST_FILE), 'utf8')) as OnnxManifest;
    if (
      manifest.format !== 'sam2-tfjs-onnx' ||
      manifest.graphVersion !== GRAPH_VERSION ||
      manifest.model !== model.config.name ||
      manifest.imageSize !== model.config.imageSize ||
      manifest.weightsStamp !== stamp
    ) {
      return undefined;
    }
    return {
      imageEncoder: fs.readFileSync(path.join(dir, manifest.models.image_encoder.file)),
      promptMaskDecoder: fs.readFileSync(path.join(dir, manifest.models.prompt_mask_decoder.file)),
      promptDecoderNoMask:
        manifest.models.prompt_decoder_no_mask &&
        fs.readFileSync(path.join(dir, manifest.models.prompt_decoder_no_mask.file)),
      memoryEncoder:
        manifest.models.memory_encoder && fs.readFileSync(path.join(dir, manifest.models.memory_encoder.file)),
      memoryAttention:
        manifest.models.memory_attention && fs.readFileSync(path.join(dir, manifest.models.memory_attention.file)),
      manifest,
      dir,
      cached: true,
    };
  } catch {
    return undefined;
  }
}

/**
 * The graphs for a model loaded from `weightsDir`: read from `<weightsDir>/onnx/<imageSize>` when
 * built before from the same weights, else built and written there (best effort: a read-only
 * folder or a URL just means no cache).
 */
export function onnxGraphsFor(model: Sam2Model, weightsDir?: string, cacheDir?: string | false): OnnxGraphs {
  const local = weightsDir && !/^https?:\/\//.test(weightsDir) ? weightsDir : undefined;
  const stamp = local ? weightsStamp(local) : undefined;
  const dir =
    cacheDir === false
      ? undefined
      : (cacheDir ?? (local ? path.join(local, 'onnx', String(model.config.imageSize)) : undefined));
  if (dir) {
    const cached = readCachedGraphs(model, dir, stamp);
    if (cached) return cached;
  }
  const graphs = buildOnnxGraphs(model, stamp);
  if (dir) {
    try {
      writeOnnxGraphs(graphs, dir);
      graphs.dir = dir;
    } catch {
      // caching is an optimisation only
    }
  }
  return graphs;
}
