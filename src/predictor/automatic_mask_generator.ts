/**
 * AutomaticMaskGenerator: "segment everything". Prompts a grid of points over the image (and
 * optionally over overlapping crops), keeps masks with high predicted IoU and stability,
 * removes duplicates with box NMS, and returns annotations in the reference's format and order.
 */
import * as tf from '@tensorflow/tfjs';
import { check } from '../errors';
import type { SamModel } from '../model/sam_model';
import { readImage, type ImageInput, type RgbImage } from './image_input';
import { SamPredictor, concatRows, type PredictTensors } from './sam_predictor';
import { clampMaskLogits } from '../model/sam_heads';
import { SerialQueue } from './serial_queue';
import { removeHolesAndSprinkles } from '../ops/transforms';
import { postprocessSmallRegions } from './amg/small_regions';
import {
  buildAllLayerPointGrids,
  boxXyxyToXywh,
  generateCropBoxes,
  isBoxNearCropEdge,
  maskToBox,
  type Box,
} from './amg/geometry';
import { batchedNms } from './amg/nms';
import { areaFromRle, cocoEncodeRle, maskToRle, rleToMask, type CocoRle, type UncompressedRle } from './amg/rle';

export type OutputMode = 'binary_mask' | 'uncompressed_rle' | 'coco_rle';

export interface AutomaticMaskGeneratorOptions {
  /** Points per side of the grid (default 32); give this or pointGrids. */
  pointsPerSide?: number | null;
  /** Points decoded together (default 64). */
  pointsPerBatch?: number;
  /** Minimum predicted IoU (default 0.8). */
  predIouThresh?: number;
  /** Minimum stability score (default 0.95). */
  stabilityScoreThresh?: number;
  /** Logit offset of the stability score (default 1). */
  stabilityScoreOffset?: number;
  /** Logit threshold of the binary masks (default 0). */
  maskThreshold?: number;
  /** Box NMS IoU threshold within a crop (default 0.7). */
  boxNmsThresh?: number;
  /** Crop layers (default 0: the whole image only). */
  cropNLayers?: number;
  /** Box NMS IoU threshold across crops (default 0.7). */
  cropNmsThresh?: number;
  /** Crop overlap as a fraction of the short side (default 512/1500). */
  cropOverlapRatio?: number;
  /** Points per side shrink by this factor per crop layer (default 1). */
  cropNPointsDownscaleFactor?: number;
  /** Explicit point grids in [0,1]^2, one per crop layer. */
  pointGrids?: [number, number][][] | null;
  /** Holes and specks up to this area are removed from the low-res masks (default 0 = off). */
  minMaskRegionArea?: number;
  outputMode?: OutputMode;
  /** Refine each mask with a second, mask-prompted pass (default false). */
  useM2m?: boolean;
  /** Three masks per point (default true). */
  multimaskOutput?: boolean;
}

export interface MaskAnnotation {
  /** The mask in the chosen output mode. */
  segmentation: Uint8Array | UncompressedRle | CocoRle;
  area: number;
  /** [x, y, w, h]. */
  bbox: Box;
  predictedIou: number;
  /** The prompt point [[x, y]] in image pixels. */
  pointCoords: [number, number][];
  stabilityScore: number;
  /** The crop that produced the mask, [x, y, w, h]. */
  cropBox: Box;
}

export interface GenerateProgress {
  /** Point batches decoded so far, over all crops. */
  done: number;
  total: number;
  stage: 'encode' | 'decode' | 'postprocess';
}

/** One mask candidate before annotation. */
interface MaskRecord {
  rle: UncompressedRle;
  box: Box;
  iou: number;
  point: [number, number];
  stability: number;
  crop: Box;
}

/** Where the mask candidates of the last generate call went (to explain an empty result). */
export interface GenerateStats {
  /** Masks decoded (points x masks per point). */
  candidates: number;
  /** Dropped for a predicted IoU at or below predIouThresh. */
  belowPredIou: number;
  /** Dropped for a stability score below stabilityScoreThresh. */
  belowStability: number;
  /** Dropped for touching a crop edge inside the image. */
  nearCropEdge: number;
  /** Removed as duplicates by box NMS (within and across crops). */
  nmsDuplicates: number;
  kept: number;
}

/** Wall time per stage of the last generate call, in ms. */
export interface GenerateTimings {
  encode: number;
  decode: number;
  postprocess: number;
}

const DEFAULTS = {
  pointsPerSide: 32,
  pointsPerBatch: 64,
  predIouThresh: 0.8,
  stabilityScoreThresh: 0.95,
  stabilityScoreOffset: 1.0,
  maskThreshold: 0,
  boxNmsThresh: 0.7,
  cropNLayers: 0,
  cropNmsThresh: 0.7,
  cropOverlapRatio: 512 / 1500,
  cropNPointsDownscaleFactor: 1,
  minMaskRegionArea: 0,
  outputMode: 'binary_mask' as OutputMode,
  useM2m: false,
  multimaskOutput: true,
};

export class AutomaticMaskGenerator {
  readonly options: typeof DEFAULTS;
  readonly pointGrids: [number, number][][];
  private readonly predictor: SamPredictor;
  /** Stage timings of the last generate call. */
  lastTimings: GenerateTimings = { encode: 0, decode: 0, postprocess: 0 };
  /** generate calls run one at a time: they share one predictor's image. */
  private readonly queue = new SerialQueue();
  /** Candidate counts of the last generate call, per filter. */
  lastStats: GenerateStats = emptyStats();

  constructor(
    readonly model: SamModel,
    options: AutomaticMaskGeneratorOptions = {},
  ) {
    const o = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
    const hasSide = options.pointsPerSide !== null && (options.pointsPerSide !== undefined || !options.pointGrids);
    const hasGrids = !!options.pointGrids;
    if (hasSide) {
      // 0, negative or fractional would silently give an empty grid
      check(
        Number.isInteger(o.pointsPerSide) && (o.pointsPerSide as number) > 0,
        `pointsPerSide must be a positive integer, got ${o.pointsPerSide}.`,
        'CONFIG',
      );
      check(
        Number.isInteger(o.cropNPointsDownscaleFactor) && o.cropNPointsDownscaleFactor > 0,
        `cropNPointsDownscaleFactor must be a positive integer, got ${o.cropNPointsDownscaleFactor}.`,
        'CONFIG',
      );
    }
    check(
      hasSide !== hasGrids,
      'Give exactly one of pointsPerSide and pointGrids (set pointsPerSide: null to use pointGrids).',
      'CONFIG',
    );
    for (const k of [
      'predIouThresh',
      'stabilityScoreThresh',
      'boxNmsThresh',
      'cropNmsThresh',
      'cropOverlapRatio',
    ] as const) {
      check(o[k] >= 0 && o[k] <= 1, `${k} must be in [0, 1], got ${o[k]}.`, 'CONFIG');
    }
    check(
      ['binary_mask', 'uncompressed_rle', 'coco_rle'].includes(o.outputMode),
      `Unknown outputMode "${o.outputMode}": use binary_mask, uncompressed_rle or coco_rle.`,
      'CONFIG',
    );
    check(
      Number.isInteger(o.pointsPerBatch) && o.pointsPerBatch > 0,
      `pointsPerBatch must be a positive integer, got ${o.pointsPerBatch}.`,
      'CONFIG',
    );
    check(
      Number.isInteger(o.cropNLayers) && o.cropNLayers >= 0,
      `cropNLayers must be a non-negative integer, got ${o.cropNLayers}.`,
      'CONFIG',
    );
    this.options = o as typeof DEFAULTS;
    if (hasGrids) {
      this.pointGrids = options.pointGrids as [number, number][][];
      check(
        this.pointGrids.length === o.cropNLayers + 1,
        `pointGrids needs one grid per crop layer (${o.cropNLayers + 1}), got ${this.pointGrids.length}.`,
        'CONFIG',
      );
    } else {
      this.pointGrids = buildAllLayerPointGrids(o.pointsPerSide as number, o.cropNLayers, o.cropNPointsDownscaleFactor);
    }
    const sam1 = model.kind === 'sam1';
    check(
      !(sam1 && o.useM2m),
      `useM2m is a SAM 2 option: ${model.config.name} (SAM 1) has no mask-to-mask refinement.`,
      'CONFIG',
    );
    // SAM 2's reference cleans the low-res masks with the region area (its predictor's
    // hole/sprinkle filter); SAM 1's cleans the final full-resolution masks in generate
    this.predictor = new SamPredictor(model, {
      maskThreshold: o.maskThreshold,
      maxHoleArea: sam1 ? 0 : o.minMaskRegionArea,
      maxSprinkleArea: sam1 ? 0 : o.minMaskRegionArea,
    });
  }

  /** Segments everything in `image`; annotations come in the reference's order. */
  generate(image: ImageInput, opts: { onProgress?: (p: GenerateProgress) => void } = {}): Promise<MaskAnnotation[]> {
    return this.queue.run(() => this.generateNow(image, opts));
  }

  private async generateNow(
    image: ImageInput,
    opts: { onProgress?: (p: GenerateProgress) => void },
  ): Promise<MaskAnnotation[]> {
    const img = await readImage(image);
    const o = this.options;
    const { boxes: crops, layers } = generateCropBoxes(img.height, img.width, o.cropNLayers, o.cropOverlapRatio);
    const total = crops.reduce((n, _, i) => n + Math.ceil(this.pointGrids[layers[i]].length / o.pointsPerBatch), 0);
    const progress = { done: 0, total };
    this.lastTimings = { encode: 0, decode: 0, postprocess: 0 };
    this.lastStats = emptyStats();
    let records: MaskRecord[] = [];
    try {
      for (let i = 0; i < crops.length; i++) {
        records.push(...(await this.processCrop(img, crops[i], layers[i], progress, opts.onProgress)));
      }
    } finally {
      this.predictor.resetPredictor();
    }
    const t0 = Date.now();
    if (crops.length > 1) {
      // prefer masks from smaller crops
      const scores = records.map((r) => 1 / ((r.crop[2] - r.crop[0]) * (r.crop[3] - r.crop[1])));
      const before = records.length;
      records = batchedNms(
        records.map((r) => r.box),
        scores,
        records.map(() => 0),
        o.cropNmsThresh,
      ).map((k) => records[k]);
      this.lastStats.nmsDuplicates += before - records.length;
    }
    if (this.model.kind === 'sam1' && o.minMaskRegionArea > 0) {
      records = this.removeSmallRegions(records, img.height, img.width);
    }
    this.lastStats.kept = records.length;
    const out = records.map((r) => this.annotate(r));
    this.lastTimings.postprocess += Date.now() - t0;
    opts.onProgress?.({ ...progress, stage: 'postprocess' });
    return out;
  }

  /** Frees the cached image features. */
  dispose(): void {
    this.predictor.dispose();
  }

  /** SAM 1's generate: holes and islands below minMaskRegionArea removed, then NMS preferring unchanged masks. */
  private removeSmallRegions(records: MaskRecord[], h: number, w: number): MaskRecord[] {
    const o = this.options;
    const kept = postprocessSmallRegions(
      records.map((r) => ({ mask: rleToMask(r.rle), box: r.box })),
      h,
      w,
      o.minMaskRegionArea,
      Math.max(o.boxNmsThresh, o.cropNmsThresh),
    );
    return kept.map(({ index, mask, box }) => {
      const r = records[index];
      return mask && box ? { ...r, rle: maskToRle(mask, h, w), box } : r;
    });
  }

  private annotate(r: MaskRecord): MaskAnnotation {
    const mode = this.options.outputMode;
    return {
      segmentation: mode === 'coco_rle' ? cocoEncodeRle(r.rle) : mode === 'binary_mask' ? rleToMask(r.rle) : r.rle,
      area: areaFromRle(r.rle),
      bbox: boxXyxyToXywh(r.box),
      predictedIou: r.iou,
      pointCoords: [r.point],
      stabilityScore: r.stability,
      cropBox: boxXyxyToXywh(r.crop),
    };
  }

  private async processCrop(
    img: RgbImage,
    crop: Box,
    layer: number,
    progress: { done: number; total: number },
    onProgress?: (p: GenerateProgress) => void,
  ): Promise<MaskRecord[]> {
    const o = this.options;
    const [x0, y0, x1, y1] = crop;
    const w = x1 - x0;
    const h = y1 - y0;
    const t0 = Date.now();
    onProgress?.({ ...progress, stage: 'encode' });
    await this.predictor.setImage(cropImage(img, crop));
    this.lastTimings.encode += Date.now() - t0;
    const points = this.pointGrids[layer].map(([px, py]) => [px * w, py * h] as [number, number]);
    let records: MaskRecord[] = [];
    for (let b = 0; b < points.length; b += o.pointsPerBatch) {
      const t1 = Date.now();
      records.push(...(await this.processBatch(points.slice(b, b + o.pointsPerBatch), crop, img)));
      this.lastTimings.decode += Date.now() - t1;
      progress.done++;
      onProgress?.({ ...progress, stage: 'decode' });
    }
    this.predictor.resetPredictor();
    const keep = batchedNms(
      records.map((r) => r.box),
      records.map((r) => r.iou),
      records.map(() => 0),
      o.boxNmsThresh,
    );
    this.lastStats.nmsDuplicates += records.length - keep.length;
    records = keep.map((k) => records[k]);
    for (const r of records) {
      r.box = [r.box[0] + x0, r.box[1] + y0, r.box[2] + x0, r.box[3] + y0];
      r.point = [r.point[0] + x0, r.point[1] + y0];
    }
    return records;
  }

  /** Decodes one batch of points (crop pixels) and returns the masks that pass the filters. */
  private async processBatch(points: [number, number][], crop: Box, img: RgbImage): Promise<MaskRecord[]> {
    const o = this.options;
    const [x0, y0, x1, y1] = crop;
    const w = x1 - x0;
    const h = y1 - y0;
    const b = points.length;
    const coords = tf.tensor3d(
      points.flatMap(([x, y]) => this.predictor.modelCoords(x, y)),
      [b, 1, 2],
    );
    const labels = tf.ones([b, 1], 'int32') as tf.Tensor2D;
    let r: PredictTensors;
    try {
      // the executor's decoder (ONNX Runtime) when it has one
      r = await this.predictor.decodeTensors(coords, labels, { multimaskOutput: o.multimaskOutput });
    } finally {
      tf.dispose([coords, labels]);
    }
    r.objectScoreLogits.dispose();
    let masks = r.lowResMasks;
    let ious = r.ious;
    try {
      if (o.useM2m) {
        const refined = await this.refineWithM2m(points, masks);
        tf.dispose([masks, ious]);
        masks = refined.masks;
        ious = refined.ious;
      }
      const m = masks.shape[3];
      const iouData = (await ious.data()) as Float32Array;
      // candidates in the reference's order: point-major, then mask index
      const candidates: number[] = [];
      for (let i = 0; i < b * m; i++) if (!(o.predIouThresh > 0) || iouData[i] > o.predIouThresh) candidates.push(i);
      this.lastStats.candidates += b * m;
      this.lastStats.belowPredIou += b * m - candidates.length;
      if (!candidates.length) return [];
      const s = masks.shape[1];
      // host copy of the candidates' low-res logits, cleaned like the reference's predictor
      const planar = tf.tidy(() =>
        tf.gather(tf.reshape(tf.transpose(masks, [0, 3, 1, 2]), [b * m, s, s]), tf.tensor1d(candidates, 'int32')),
      );
      const lowData = (await planar.data()) as Float32Array;
      planar.dispose();
      const rows = candidates.map((_, j) => lowData.slice(j * s * s, (j + 1) * s * s));
      if (o.minMaskRegionArea > 0 && this.model.kind !== 'sam1') {
        removeHolesAndSprinkles(rows, s, s, o.minMaskRegionArea, o.minMaskRegionArea, o.maskThreshold);
      }
      const out: MaskRecord[] = [];
      // upsample a few masks at a time so large images keep memory bounded
      const chunk = Math.max(1, Math.floor(8e6 / (w * h)));
      for (let c = 0; c < rows.length; c += chunk) {
        const part = rows.slice(c, c + chunk);
        const { stab, bin } = tf.tidy(() => {
          const t = tf.tensor4d(concatRows(part), [part.length, s, s, 1]);
          // to the crop's size (SAM 1: through the padded square, as its predictor does)
          const up = tf.reshape(this.predictor.postprocessLogits(t), [part.length, h * w]);
          const count = (thr: number) => tf.sum(tf.cast(tf.greater(up, thr), 'float32'), 1);
          const inter = count(o.maskThreshold + o.stabilityScoreOffset);
          const union = count(o.maskThreshold - o.stabilityScoreOffset);
          return { stab: tf.div(inter, union), bin: tf.greater(up, o.maskThreshold) };
        });
        const stabData = (await stab.data()) as Float32Array;
        const binData = (await bin.data()) as Uint8Array;
        tf.dispose([stab, bin]);
        part.forEach((_, j) => {
          const idx = candidates[c + j];
          const stability = stabData[j];
          if (o.stabilityScoreThresh > 0 && !(stability >= o.stabilityScoreThresh))
            return void this.lastStats.belowStability++;
          const mask = binData.subarray(j * h * w, (j + 1) * h * w);
          const box = maskToBox(mask, h, w);
          if (isBoxNearCropEdge(box, crop, [0, 0, img.width, img.height])) return void this.lastStats.nearCropEdge++;
          out.push({
            rle: maskToRle(uncropMask(mask, crop, img.height, img.width), img.height, img.width),
            box,
            iou: iouData[idx],
            point: points[Math.floor(idx / m)],
            stability,
            crop,
          });
        });
      }
      return out;
    } finally {
      tf.dispose([masks, ious]);
    }
  }

  /** Second pass: each point again with its own low-res mask as the mask prompt, single mask. */
  private async refineWithM2m(points: [number, number][], masks: tf.Tensor4D) {
    const [b, s, , m] = masks.shape;
    const inputs = tf.tidy(() => ({
      // clamped, as the reference's predictor returns them
      maskInput: clampMaskLogits(tf.reshape(tf.transpose(masks, [0, 3, 1, 2]), [b * m, s, s, 1]) as tf.Tensor4D),
      coords: tf.tensor3d(
        points.flatMap(([x, y]) => {
          const xy = this.predictor.modelCoords(x, y);
          return new Array(m).fill(0).flatMap(() => xy);
        }),
        [b * m, 1, 2],
      ),
      labels: tf.ones([b * m, 1], 'int32') as tf.Tensor2D,
    }));
    let r: PredictTensors;
    try {
      r = await this.predictor.decodeTensors(inputs.coords, inputs.labels, {
        multimaskOutput: false,
        maskInput: inputs.maskInput,
      });
    } finally {
      tf.dispose([inputs.maskInput, inputs.coords, inputs.labels]);
    }
    try {
      // back to [b, s, s, m] so candidates stay point-major
      return tf.tidy(() => ({
        masks: tf.transpose(tf.reshape(r.lowResMasks, [b, m, s, s]), [0, 2, 3, 1]) as tf.Tensor4D,
        ious: tf.reshape(r.ious, [b, m]) as tf.Tensor2D,
      }));
    } finally {
      tf.dispose([r.lowResMasks, r.ious, r.objectScoreLogits]);
    }
  }
}

function emptyStats(): GenerateStats {
  return { candidates: 0, belowPredIou: 0, belowStability: 0, nearCropEdge: 0, nmsDuplicates: 0, kept: 0 };
}

function cropImage(img: RgbImage, [x0, y0, x1, y1]: Box): RgbImage {
  if (x0 === 0 && y0 === 0 && x1 === img.width && y1 === img.height) return img;
  const w = x1 - x0;
  const h = y1 - y0;
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    data.set(img.data.subarray(((y + y0) * img.width + x0) * 3, ((y + y0) * img.width + x1) * 3), y * w * 3);
  return { data, width: w, height: h };
}

function uncropMask(mask: Uint8Array, [x0, y0, x1, y1]: Box, height: number, width: number): Uint8Array {
  if (x0 === 0 && y0 === 0 && x1 === width && y1 === height) return mask;
  const w = x1 - x0;
  const out = new Uint8Array(height * width);
  for (let y = 0; y < y1 - y0; y++) out.set(mask.subarray(y * w, (y + 1) * w), (y + y0) * width + x0);
  return out;
}
