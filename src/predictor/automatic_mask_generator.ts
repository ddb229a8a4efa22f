/**
 * AutomaticMaskGenerator: "segment everything". Prompts a grid of single points over the image
 * (and optionally over layers of overlapping crops), keeps masks with high predicted IoU and
 * stability, drops duplicates with box NMS, and returns annotations in the reference's format
 * and order (SAM2AutomaticMaskGenerator).
 */
import * as tf from '@tensorflow/tfjs';
import { check } from '../errors';
import type { Sam2Model } from '../model/sam2';
import { readImage, type ImageInput, type RgbImage } from './image_input';
import { SamPredictor, concatRows } from './sam_predictor';
import { removeHolesAndSprinkles, upsampleLogits } from './transforms';
import { buildAllLayerPointGrids, type Point } from './amg/grids';
import { boxXyxyToXywh, cropImage, generateCropBoxes, uncropBox, uncropMask, type Box } from './amg/crops';
import { batchedMaskToBox, isBoxNearCropEdge, maskToBox, removeSmallRegions, stabilityScore } from './amg/masks';
import { batchedNms } from './amg/nms';
import { areaFromRle, cocoDecodeRle, cocoEncodeRle, maskToRle, rleToMask, type CocoRle, type UncompressedRle } from './amg/rle';

export type OutputMode = 'binary_mask' | 'uncompressed_rle' | 'coco_rle';

/** Options of {@link AutomaticMaskGenerator}: the reference's, in camelCase, same defaults. */
export interface AutomaticMaskGeneratorOptions {
  /** Points per side of the prompt grid (default 32); null when giving pointGrids. */
  pointsPerSide?: number | null;
  /** Points decoded per batch (default 64); larger is faster but needs more memory. */
  pointsPerBatch?: number;
  /** Keep masks whose predicted IoU is above this, in [0, 1] (default 0.8; 0 = keep all). */
  predIouThresh?: number;
  /** Keep masks whose stability score is at least this, in [0, 1] (default 0.95; 0 = keep all). */
  stabilityScoreThresh?: number;
  /** Logit shift of the two binarizations compared by the stability score (default 1). */
  stabilityScoreOffset?: number;
  /** Logit threshold of the binary masks (default 0). */
  maskThreshold?: number;
  /** Box IoU above which a lower-scoring mask of the same crop is dropped, in [0, 1] (default 0.7). */
  boxNmsThresh?: number;
  /** Layers of crops after the whole image; layer i has (2^i)^2 crops (default 0). */
  cropNLayers?: number;
  /** Box IoU above which duplicates across crops are dropped, in [0, 1] (default 0.7). */
  cropNmsThresh?: number;
  /** Overlap of neighbouring first-layer crops as a fraction of the short side (default 512/1500). */
  cropOverlapRatio?: number;
  /** Points per side shrink by this factor per crop layer (default 1). */
  cropNPointsDownscaleFactor?: number;
  /** Explicit point grids in [0, 1]^2, one per crop layer; then pointsPerSide must be null. */
  pointGrids?: Point[][] | null;
  /**
   * When > 0, holes and specks of up to this many pixels of the 256x256 low-res masks are
   * removed before upscaling (8-connected), as the reference's predictor does (default 0).
   */
  minMaskRegionArea?: number;
  /** Form of `segmentation` (default 'binary_mask'). */
  outputMode?: OutputMode;
  /** Refine every mask by decoding its point again with the mask as a prompt (default false). */
  useM2m?: boolean;
  /** Three masks per point (default true); false gives one. */
  multimaskOutput?: boolean;
}

/** One mask found in the image (the reference's record, camelCase). */
export interface MaskAnnotation {
  /** The mask: a row-major height x width 0/1 array, or an RLE, per outputMode. */
  segmentation: Uint8Array | UncompressedRle | CocoRle;
  /** Mask pixels. */
  area: number;
  /** [x, y, w, h] of the mask, with x + w and y + h the last pixel column/row (as the reference). */
  bbox: Box;
  /** The model's estimate of the mask's IoU. */
  predictedIou: number;
  /** The prompt point [[x, y]] in image pixels. */
  pointCoords: Point[];
  /** IoU of the mask binarized at threshold +- stabilityScoreOffset. */
  stabilityScore: number;
  /** The crop that produced the mask, [x, y, w, h]. */
  cropBox: Box;
}

/** Progress reported by generate. */
export interface GenerateProgress {
  /** Point batches decoded so far, over all crops. */
  done: number;
  total: number;
  stage: 'encode' | 'decode' | 'postprocess';
}

/** Wall time per stage of the last generate call, in ms. */
export interface GenerateTimings {
  encode: number;
  decode: number;
  postprocess: number;
}

/** One kept mask before it becomes an annotation (image coordinates once its crop is done). */
interface MaskRecord {
  rle: UncompressedRle;
  box: Box;
  iou: number;
  point: Point;
  stability: number;
  crop: Box;
}

const DEFAULTS = {
  pointsPerSide: 32 as number | null,
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

type ResolvedOptions = typeof DEFAULTS;

/** Upscaled logits kept on the device at once (floats): bounds memory for large images. */
const UPSCALE_BUDGET = 8e6;

export class AutomaticMaskGenerator {
  readonly options: Readonly<ResolvedOptions>;
  /** The point grid of each crop layer, in [0, 1]^2. */
  readonly pointGrids: Point[][];
  /** Stage timings of the last generate call. */
  lastTimings: GenerateTimings = { encode: 0, decode: 0, postprocess: 0 };
  private readonly predictor: SamPredictor;

  /** Checks the options (Sam2Error 'CONFIG' on bad ones); no work happens until generate. */
  constructor(readonly model: Sam2Model, options: AutomaticMaskGeneratorOptions = {}) {
    const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    const o: ResolvedOptions = { ...DEFAULTS, ...given };
    const hasGrids = options.pointGrids !== undefined && options.pointGrids !== null;
    check(
      (o.pointsPerSide !== null) !== hasGrids,
      hasGrids
        ? 'Give exactly one of pointsPerSide and pointGrids: set pointsPerSide: null to use your pointGrids.'
        : 'Give exactly one of pointsPerSide and pointGrids: pointsPerSide is null and there are no pointGrids.',
      'CONFIG',
    );
    for (const k of ['predIouThresh', 'stabilityScoreThresh', 'boxNmsThresh', 'cropNmsThresh', 'cropOverlapRatio'] as const) {
      check(typeof o[k] === 'number' && o[k] >= 0 && o[k] <= 1, `${k} must be a number in [0, 1], got ${o[k]}.`, 'CONFIG');
    }
    check(
      ['binary_mask', 'uncompressed_rle', 'coco_rle'].includes(o.outputMode),
      `Unknown outputMode "${o.outputMode}": use 'binary_mask', 'uncompressed_rle' or 'coco_rle'.`,
      'CONFIG',
    );
    const positiveInt = (k: 'pointsPerBatch' | 'cropNPointsDownscaleFactor') =>
      check(Number.isInteger(o[k]) && o[k] > 0, `${k} must be a positive integer, got ${o[k]}.`, 'CONFIG');
    positiveInt('pointsPerBatch');
    positiveInt('cropNPointsDownscaleFactor');
    check(Number.isInteger(o.cropNLayers) && o.cropNLayers >= 0, `cropNLayers must be a non-negative integer, got ${o.cropNLayers}.`, 'CONFIG');
    check(Number.isFinite(o.minMaskRegionArea) && o.minMaskRegionArea >= 0, `minMaskRegionArea must be >= 0, got ${o.minMaskRegionArea}.`, 'CONFIG');
    for (const k of ['stabilityScoreOffset', 'maskThreshold'] as const) check(Number.isFinite(o[k]), `${k} must be a finite number, got ${o[k]}.`, 'CONFIG');
    if (hasGrids) {
      const grids = options.pointGrids as Point[][];
      check(
        Array.isArray(grids) && grids.length === o.cropNLayers + 1,
        `pointGrids needs one grid per crop layer (cropNLayers + 1 = ${o.cropNLayers + 1}), got ${Array.isArray(grids) ? grids.length : typeof grids}.`,
        'CONFIG',
      );
      grids.forEach((g, i) =>
        check(
          Array.isArray(g) && g.length > 0 && g.every((p) => p.length === 2 && p.every((v) => v >= 0 && v <= 1)),
          `pointGrids[${i}] must be a non-empty list of [x, y] points in [0, 1].`,
          'CONFIG',
        ),
      );
      this.pointGrids = grids.map((g) => g.map(([x, y]) => [x, y] as Point));
    } else {
      const n = o.pointsPerSide as number;
      check(Number.isInteger(n) && n > 0, `pointsPerSide must be a positive integer, got ${n}.`, 'CONFIG');
      this.pointGrids = buildAllLayerPointGrids(n, o.cropNLayers, o.cropNPointsDownscaleFactor);
    }
    this.options = o;
    // like the reference, the region area also drives the predictor's low-res hole/speck removal
    this.predictor = new SamPredictor(model, {
      maskThreshold: o.maskThreshold,
      maxHoleArea: o.minMaskRegionArea,
      maxSprinkleArea: o.minMaskRegionArea,
    });
  }

  /**
   * Segments everything in `image`. One image encode per crop, then the crop's grid points in
   * batches of pointsPerBatch. Annotations come in the reference's order.
   */
  async generate(image: ImageInput, opts: { onProgress?: (p: GenerateProgress) => void } = {}): Promise<MaskAnnotation[]> {
    const img = await readImage(image);
    const o = this.options;
    const { boxes: crops, layers } = generateCropBoxes(img.height, img.width, o.cropNLayers, o.cropOverlapRatio);
    const total = crops.reduce((n, _, i) => n + Math.ceil(this.pointGrids[layers[i]].length / o.pointsPerBatch), 0);
    const progress = { done: 0, total };
    this.lastTimings = { encode: 0, decode: 0, postprocess: 0 };
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
      // duplicates across crops: the mask from the smaller crop wins (it saw more detail)
      const scores = records.map((r) => Math.fround(1 / ((r.crop[2] - r.crop[0]) * (r.crop[3] - r.crop[1]))));
      const keep = batchedNms(records.map((r) => r.box), scores, new Uint8Array(records.length), o.cropNmsThresh);
      records = keep.map((k) => records[k]);
    }
    const out = records.map((r) => this.annotate(r));
    this.lastTimings.postprocess += Date.now() - t0;
    opts.onProgress?.({ ...progress, stage: 'postprocess' });
    return out;
  }

  /**
   * SAM 1's final clean-up, which SAM 2's generate defines but does not run: in every mask,
   * fills holes and deletes islands of fewer than `minArea` pixels (8-connected), then box NMS
   * again preferring unchanged masks. Returns the kept annotations (changed ones with new
   * segmentation, area and bbox, in the same output form); `height`/`width` are the image's.
   */
  static postprocessSmallRegions(anns: MaskAnnotation[], minArea: number, nmsThresh: number, height: number, width: number): MaskAnnotation[] {
    const cleaned = anns.map((a) => {
      const mask = toBinary(a.segmentation, height, width);
      const holes = removeSmallRegions(mask, height, width, minArea, 'holes');
      const islands = removeSmallRegions(holes.mask, height, width, minArea, 'islands');
      return { mask: islands.mask, unchanged: !holes.changed && !islands.changed };
    });
    const boxes = cleaned.map((c) => maskToBox(c.mask, height, width));
    const scores = cleaned.map((c) => (c.unchanged ? 1 : 0));
    const keep = batchedNms(boxes, scores, new Uint8Array(anns.length), nmsThresh);
    return keep.map((i) => {
      if (cleaned[i].unchanged) return anns[i];
      const rle = maskToRle(cleaned[i].mask, height, width);
      const s = anns[i].segmentation;
      const segmentation = s instanceof Uint8Array ? cleaned[i].mask : typeof s.counts === 'string' ? cocoEncodeRle(rle) : rle;
      return { ...anns[i], segmentation, area: areaFromRle(rle), bbox: boxXyxyToXywh(boxes[i]) };
    });
  }

  /** Frees the cached image features. */
  dispose(): void {
    this.predictor.dispose();
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

  /** Encodes one crop, decodes its grid, and returns its masks after NMS in image coordinates. */
  private async processCrop(
    img: RgbImage,
    crop: Box,
    layer: number,
    progress: { done: number; total: number },
    onProgress?: (p: GenerateProgress) => void,
  ): Promise<MaskRecord[]> {
    const o = this.options;
    const w = crop[2] - crop[0];
    const h = crop[3] - crop[1];
    onProgress?.({ ...progress, stage: 'encode' });
    const t0 = Date.now();
    // the predictor resizes the crop itself to the model's input size
    await this.predictor.setImage(cropImage(img, crop));
    this.lastTimings.encode += Date.now() - t0;
    // float32 like the reference's point tensor
    const points = this.pointGrids[layer].map(([px, py]) => [Math.fround(px * w), Math.fround(py * h)] as Point);
    let records: MaskRecord[] = [];
    for (let b = 0; b < points.length; b += o.pointsPerBatch) {
      const t1 = Date.now();
      records.push(...(await this.processBatch(points.slice(b, b + o.pointsPerBatch), crop, img)));
      this.lastTimings.decode += Date.now() - t1;
      progress.done++;
      onProgress?.({ ...progress, stage: 'decode' });
    }
    this.predictor.resetPredictor();
    const t2 = Date.now();
    const keep = batchedNms(records.map((r) => r.box), records.map((r) => r.iou), new Uint8Array(records.length), o.boxNmsThresh);
    records = keep.map((k) => records[k]);
    for (const r of records) {
      r.box = uncropBox(r.box, crop);
      r.point = [Math.fround(r.point[0] + crop[0]), Math.fround(r.point[1] + crop[1])];
    }
    this.lastTimings.postprocess += Date.now() - t2;
    return records;
  }

  /**
   * Decodes a batch of points (crop pixels) and returns the masks passing the IoU, stability
   * and crop-edge filters, in the reference's order (point-major, then mask index). Masks stay
   * on the device until they are final; only kept binary masks are copied to the host.
   */
  private async processBatch(points: Point[], crop: Box, img: RgbImage): Promise<MaskRecord[]> {
    const o = this.options;
    const w = crop[2] - crop[0];
    const h = crop[3] - crop[1];
    const { logits, ious } = this.decodePoints(points, w, h);
    try {
      const m = logits.shape[0] / points.length;
      const iouData = (await ious.data()) as Float32Array;
      const candidates: number[] = [];
      for (let i = 0; i < iouData.length; i++) if (!(o.predIouThresh > 0) || iouData[i] > o.predIouThresh) candidates.push(i);
      const out: MaskRecord[] = [];
      // a few masks at a time at crop resolution keeps memory bounded for large images
      const chunk = Math.max(1, Math.floor(UPSCALE_BUDGET / (w * h)));
      for (let c = 0; c < candidates.length; c += chunk) {
        const idx = candidates.slice(c, c + chunk);
        const lowRes = await this.cleanLowRes(tf.tidy(() => tf.gather(logits, tf.tensor1d(idx, 'int32'))));
        const scored = tf.tidy(() => {
          const up = upsampleLogits(lowRes, h, w);
          const binary = tf.reshape(tf.greater(up, o.maskThreshold), [idx.length, h, w]) as tf.Tensor3D;
          return { stability: stabilityScore(up, o.maskThreshold, o.stabilityScoreOffset), binary, boxes: batchedMaskToBox(binary) };
        });
        lowRes.dispose();
        try {
          const stability = (await scored.stability.data()) as Float32Array;
          const boxes = (await scored.boxes.data()) as Int32Array;
          const kept: number[] = [];
          for (let j = 0; j < idx.length; j++) {
            if (o.stabilityScoreThresh > 0 && !(stability[j] >= o.stabilityScoreThresh)) continue;
            const box = Array.from(boxes.subarray(4 * j, 4 * j + 4)) as Box;
            if (isBoxNearCropEdge(box, crop, [0, 0, img.width, img.height])) continue;
            kept.push(j);
          }
          if (!kept.length) continue;
          const keptMasks = tf.tidy(() => tf.gather(scored.binary, tf.tensor1d(kept, 'int32')));
          const bits = (await keptMasks.data()) as Uint8Array;
          keptMasks.dispose();
          kept.forEach((j, k) => {
            const mask = uncropMask(bits.subarray(k * h * w, (k + 1) * h * w), crop, img.height, img.width);
            out.push({
              rle: maskToRle(mask, img.height, img.width),
              box: Array.from(boxes.subarray(4 * j, 4 * j + 4)) as Box,
              iou: iouData[idx[j]],
              point: points[Math.floor(idx[j] / m)],
              stability: stability[j],
              crop,
            });
          });
        } finally {
          tf.dispose(scored);
        }
      }
      return out;
    } finally {
      tf.dispose([logits, ious]);
    }
  }

  /**
   * Decodes single positive clicks: low-res logits [B*M, s, s, 1] and IoUs [B*M], point-major.
   * With useM2m, each mask is decoded again with its own clamped logits as the mask prompt.
   */
  private decodePoints(points: Point[], w: number, h: number): { logits: tf.Tensor4D; ious: tf.Tensor1D } {
    const o = this.options;
    const S = this.predictor.imageSize;
    return tf.tidy(() => {
      // crop pixels -> model-input pixels, as the predictor's coordinate transform
      const modelCoords = (reps: number) =>
        tf.tensor3d(points.flatMap(([x, y]) => new Array(reps).fill([(x / w) * S, (y / h) * S]).flat()), [points.length * reps, 1, 2]);
      const b = points.length;
      const r = this.predictor.predictTensors(modelCoords(1), tf.ones([b, 1], 'int32') as tf.Tensor2D, { multimaskOutput: o.multimaskOutput });
      const [, s, , m] = r.lowResMasks.shape;
      const logits = tf.reshape(tf.transpose(r.lowResMasks, [0, 3, 1, 2]), [b * m, s, s, 1]) as tf.Tensor4D;
      const ious = tf.reshape(r.ious, [b * m]) as tf.Tensor1D;
      if (!o.useM2m) return { logits, ious };
      const refined = this.predictor.predictTensors(modelCoords(m), tf.ones([b * m, 1], 'int32') as tf.Tensor2D, {
        multimaskOutput: false,
        maskInput: tf.clipByValue(logits, -32, 32) as tf.Tensor4D,
      });
      return { logits: refined.lowResMasks, ious: tf.reshape(refined.ious, [b * m]) as tf.Tensor1D };
    });
  }

  /**
   * The reference's predictor fills small holes and removes specks of the low-res masks
   * before upscaling when minMaskRegionArea > 0 (a host pass); otherwise the logits pass through.
   * Takes ownership of `lowRes`.
   */
  private async cleanLowRes(lowRes: tf.Tensor4D): Promise<tf.Tensor4D> {
    const area = this.options.minMaskRegionArea;
    if (!(area > 0)) return lowRes;
    const [n, s] = lowRes.shape;
    const data = (await lowRes.data()) as Float32Array;
    lowRes.dispose();
    const rows = Array.from({ length: n }, (_, i) => data.slice(i * s * s, (i + 1) * s * s));
    removeHolesAndSprinkles(rows, s, s, area, area, this.options.maskThreshold);
    return tf.tensor4d(concatRows(rows), [n, s, s, 1]);
  }
}

/** Any annotation segmentation as a row-major 0/1 mask. */
function toBinary(seg: MaskAnnotation['segmentation'], height: number, width: number): Uint8Array {
  if (seg instanceof Uint8Array) {
    check(seg.length === height * width, `A binary mask has ${seg.length} pixels, expected ${height}x${width}.`);
    return seg;
  }
  check(seg.size[0] === height && seg.size[1] === width, `An RLE of size ${seg.size} does not match the image ${height}x${width}.`);
  return rleToMask(typeof seg.counts === 'string' ? cocoDecodeRle(seg as CocoRle) : (seg as UncompressedRle));
}
