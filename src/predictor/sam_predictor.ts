/**
 * SamPredictor: set an image once, then prompt it with points, boxes and masks. Mirrors the
 * reference SAM2ImagePredictor in camelCase.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Error, check } from '../errors';
import type { ImageFeatures } from '../model/image_encoder';
import type { SamModel } from '../model/sam_model';
import { disposeImageCache, type DecoderImageCache } from '../model/mask_decoder';
import { MASK_LOGIT_LIMIT } from '../model/sam_heads';
import { readImage, type ImageInput, type RgbImage } from './image_input';
import { SerialQueue } from './serial_queue';
import {
  preprocessImage,
  removeHolesAndSprinkles,
  toModelCoords,
  upsampleLogits,
  upsampleMasks,
} from '../ops/transforms';
import { getPreprocessShape, postprocessSam1, preprocessSam1 } from './sam1_transforms';

export interface SamPredictorOptions {
  /** Logit threshold of the binary masks (default 0). */
  maskThreshold?: number;
  /** Fill background regions up to this many low-res pixels inside masks (8-connected; default 0 = off). */
  maxHoleArea?: number;
  /** Remove foreground specks up to this many low-res pixels (8-connected; default 0 = off). */
  maxSprinkleArea?: number;
}

export interface PredictOptions {
  /** Points as [x, y] pixels of the original image (or [0,1] when normalizeCoords is false). */
  pointCoords?: ArrayLike<number>[];
  /** One label per point: 1 foreground, 0 background. */
  pointLabels?: ArrayLike<number>;
  /** [x0, y0, x1, y1] in the same coordinates as the points. */
  box?: ArrayLike<number>;
  /** Low-res logits from an earlier prediction (maskInputSize^2 values, e.g. 256*256). */
  maskInput?: ArrayLike<number> | tf.Tensor;
  /** Three masks for ambiguous prompts (default true). */
  multimaskOutput?: boolean;
  /** Also return the full-resolution logits. */
  returnLogits?: boolean;
  /** Coordinates are pixels of the original image (default true); false: already in [0, 1]. */
  normalizeCoords?: boolean;
}

export interface PredictResult {
  /** One mask per output, width*height bytes, row-major, 1 inside. */
  masks: Uint8Array[];
  /** Predicted IoU of each mask. */
  scores: Float32Array;
  /**
   * Low-resolution logits of each mask (maskInputSize^2, clamped to +-32), usable as maskInput.
   * The planes of one result are views of one buffer.
   */
  lowResLogits: Float32Array[];
  /** Full-resolution logits, with returnLogits. */
  logits?: Float32Array[];
  width: number;
  height: number;
}

/** The decoder's raw outputs for a batch of prompt sets, on the device. */
export type PredictTensors = {
  /** [B, s, s, M] low-res logits (unclamped). */
  lowResMasks: tf.Tensor4D;
  /** [B, M]. */
  ious: tf.Tensor2D;
  /** [B, 1]. */
  objectScoreLogits: tf.Tensor2D;
};

/** Prompt sets decoded at once: bounds activation memory (each needs ~70 MB at 1024 px). */
const DECODER_CHUNK = 16;

/** Full-resolution masks upsampled at once in predictBatch: bounds memory (1800x1200: 8.6 MB each). */
const UPSAMPLE_CHUNK = 8;

/** Cached image features: SAM 1 has no high-resolution levels. */
type CachedFeatures = Pick<ImageFeatures, 'imageEmbed'> & Partial<Pick<ImageFeatures, 'highResFeats'>>;

interface ImageState {
  features: CachedFeatures;
  /**
   * Per image: the decoder work every prompt without a mask input shares. Computed in setImage
   * for the TF.js decoder; left empty until the TF.js decoder needs it when the executor has
   * its own (ONNX Runtime), which then decodes every prompt with points.
   */
  decoderCache: (DecoderImageCache | undefined)[];
  /** [height, width] of each image of the batch. */
  origHW: [number, number][];
  /** SAM 1: [height, width] of each image resized into the model input, before padding. */
  inputHW?: [number, number][];
}

/** Prompt set turned into model-frame tensors data. */
interface PreparedPrompt {
  coords: number[][];
  labels: number[];
  mask?: tf.Tensor4D;
}

/**
 * The async calls (setImage, setImageBatch, predict, predictBatch) on one predictor run one at a
 * time in call order: a predict issued after a setImage waits for it and sees that image.
 */
export class SamPredictor {
  private state?: ImageState;
  private readonly queue = new SerialQueue();
  private readonly maskThreshold: number;
  private readonly maxHoleArea: number;
  private readonly maxSprinkleArea: number;

  constructor(
    readonly model: SamModel,
    options: SamPredictorOptions = {},
  ) {
    this.maskThreshold = options.maskThreshold ?? 0;
    this.maxHoleArea = options.maxHoleArea ?? 0;
    this.maxSprinkleArea = options.maxSprinkleArea ?? 0;
    for (const [name, v] of Object.entries({ maxHoleArea: this.maxHoleArea, maxSprinkleArea: this.maxSprinkleArea })) {
      check(Number.isFinite(v) && v >= 0, `${name} must be a non-negative number, got ${v}.`);
    }
    check(Number.isFinite(this.maskThreshold), `maskThreshold must be a finite number, got ${this.maskThreshold}.`);
  }

  /** Side of the model input (config.imageSize). */
  get imageSize(): number {
    return this.model.config.imageSize;
  }

  /** Side of the low-res masks and mask inputs (256 at 1024). */
  get maskInputSize(): number {
    return this.model.promptEncoder.maskInputSize;
  }

  get isImageSet(): boolean {
    return this.state !== undefined;
  }

  /** Computes and caches the image embedding of one image. */
  async setImage(image: ImageInput): Promise<void> {
    await this.setImageBatch([image]);
  }

  /** Computes and caches the embeddings of several images (predict with `imageIndex`). */
  async setImageBatch(images: ImageInput[]): Promise<void> {
    check(Array.isArray(images) && images.length > 0, 'setImageBatch needs a non-empty array of images.');
    return this.queue.run(async () => {
      const decoded: RgbImage[] = [];
      for (const img of images) decoded.push(await readImage(img));
      const sam1 = this.model.kind === 'sam1';
      const inputHW: [number, number][] = [];
      const x = tf.tidy(
        () =>
          tf.concat(
            decoded.map((d) => {
              if (!sam1) return preprocessImage(d, this.imageSize);
              const p = preprocessSam1(d, this.imageSize); // longest side resized, padded bottom-right
              inputHW.push(p.inputHW);
              return p.input;
            }),
            0,
          ) as tf.Tensor4D,
      );
      try {
        // SAM 1 runs on its TF.js layers only (no executor)
        const features: CachedFeatures =
          this.model.kind === 'sam1'
            ? this.model.imageEncoder.imageFeatures(x)
            : await this.model.executor.imageFeatures(x);
        let decoderCache: (DecoderImageCache | undefined)[];
        try {
          decoderCache = this.precompute(features);
        } catch (e) {
          tf.dispose([features.imageEmbed, ...(features.highResFeats ?? [])]);
          throw e;
        }
        // replaced only on success: a failed setImage leaves the previous image set
        this.resetPredictor();
        this.state = {
          features,
          decoderCache,
          origHW: decoded.map((d) => [d.height, d.width]),
          inputHW: sam1 ? inputHW : undefined,
        };
      } finally {
        x.dispose();
      }
    });
  }

  /**
   * MaskDecoder.precomputeImage for each image of the batch; postponed (see ImageState) when
   * the executor decodes prompts itself.
   */
  private precompute(features: CachedFeatures): (DecoderImageCache | undefined)[] {
    const n = features.imageEmbed.shape[0];
    if (this.model.kind === 'sam2' && this.model.executor.decode) return new Array<undefined>(n).fill(undefined);
    return this.precomputeImages(features);
  }

  private precomputeImages(features: CachedFeatures, only?: number): DecoderImageCache[] {
    const pe = this.model.promptEncoder;
    const { sparse, dense } = pe.forward({});
    sparse.dispose();
    try {
      const indices = only === undefined ? [...Array(features.imageEmbed.shape[0]).keys()] : [only];
      return indices.map((i) => {
        const e =
          features.imageEmbed.shape[0] === 1
            ? features.imageEmbed
            : (tf.slice(features.imageEmbed, [i, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D);
        const cache = this.model.maskDecoder.precomputeImage(e, pe.getDensePe(), dense);
        if (e !== features.imageEmbed) e.dispose();
        return cache;
      });
    } finally {
      dense.dispose();
    }
  }

  /**
   * Uses precomputed features (e.g. from the image encoder, or cached elsewhere) instead of
   * encoding an image. The tensors are cloned: the caller keeps ownership of its own.
   */
  setImageFeatures(features: CachedFeatures, origHW: [number, number] | [number, number][]): void {
    const s = this.imageSize / this.model.config.backboneStride;
    const b = features.imageEmbed.shape[0];
    const hw = (Array.isArray(origHW[0]) ? origHW : [origHW]) as [number, number][];
    check(
      features.imageEmbed.shape[1] === s && features.imageEmbed.shape[2] === s && hw.length === b,
      `setImageFeatures: imageEmbed must be [B, ${s}, ${s}, 256] with one origHW per image, got [${features.imageEmbed.shape}] and ${hw.length} sizes.`,
    );
    const high = features.highResFeats;
    check(
      this.model.kind === 'sam1' || high !== undefined,
      'setImageFeatures: SAM 2 models need highResFeats (the two high-resolution levels).',
    );
    this.resetPredictor();
    const own: CachedFeatures = {
      imageEmbed: features.imageEmbed.clone(),
      highResFeats: this.model.kind === 'sam1' || !high ? undefined : [high[0].clone(), high[1].clone()],
    };
    this.state = {
      features: own,
      decoderCache: this.precompute(own),
      origHW: hw.map(([h, w]) => [h, w]),
      inputHW: this.model.kind === 'sam1' ? hw.map(([h, w]) => getPreprocessShape(h, w, this.imageSize)) : undefined,
    };
  }

  /** A copy of the cached image embedding [B, s, s, 256] (the caller disposes it). */
  getImageEmbedding(): tf.Tensor4D {
    return this.requireState().features.imageEmbed.clone();
  }

  /** Original [height, width] of image `imageIndex`. */
  originalSize(imageIndex = 0): [number, number] {
    const hw = this.requireState().origHW[imageIndex];
    check(hw, `imageIndex ${imageIndex} out of range: ${this.requireState().origHW.length} image(s) set.`);
    return hw;
  }

  /** Forgets the image and frees its features. */
  resetPredictor(): void {
    if (this.state) {
      tf.dispose([this.state.features.imageEmbed, ...(this.state.features.highResFeats ?? [])]);
      this.state.decoderCache.forEach(disposeImageCache);
      this.state = undefined;
    }
  }

  /** Frees everything the predictor holds (the model stays). */
  dispose(): void {
    this.resetPredictor();
  }

  private requireState(): ImageState {
    if (!this.state) {
      throw new Sam2Error('STATE', 'No image set: call setImage(image) (or setImageBatch) before predicting.');
    }
    return this.state;
  }

  /** Predicts masks for one prompt set. */
  async predict(options: PredictOptions = {}, imageIndex = 0): Promise<PredictResult> {
    check(
      options !== null && typeof options === 'object',
      'predict takes an options object ({ pointCoords, pointLabels, box, maskInput }).',
    );
    const [r] = await this.predictBatch([options], { imageIndex, multimaskOutput: options.multimaskOutput });
    return r;
  }

  /**
   * Predicts masks for several prompt sets on one image (e.g. many boxes or many clicks) in
   * decoder batches of prompt sets with the same number of tokens; results keep the input
   * order. `multimaskOutput` applies to all (default: the first prompt's, else true).
   */
  async predictBatch(
    prompts: PredictOptions[],
    options: { imageIndex?: number; multimaskOutput?: boolean } = {},
  ): Promise<PredictResult[]> {
    check(Array.isArray(prompts) && prompts.length > 0, 'predictBatch needs a non-empty array of prompt sets.');
    return this.queue.run(() => this.predictBatchNow(prompts, options));
  }

  private async predictBatchNow(
    prompts: PredictOptions[],
    options: { imageIndex?: number; multimaskOutput?: boolean },
  ): Promise<PredictResult[]> {
    const imageIndex = options.imageIndex ?? 0;
    const [h, w] = this.originalSize(imageIndex);
    const multimask = options.multimaskOutput ?? prompts[0].multimaskOutput ?? true;
    const prepared = prompts.map((p, i) =>
      this.preparePrompt(p, h, w, prompts.length > 1 ? `prompt ${i}: ` : '', imageIndex),
    );
    const results: PredictResult[] = new Array(prompts.length);
    // group prompt sets that can share one decoder batch
    const groups = new Map<string, number[]>();
    prepared.forEach((p, i) => {
      // SAM 1 embeds a box and two points differently (same token count): keep them apart
      const box = this.model.kind === 'sam1' && p.labels[0] === 2 ? '/box' : '';
      const key = `${p.coords.length}/${p.mask ? 1 : 0}${box}`;
      groups.set(key, [...(groups.get(key) ?? []), i]);
    });
    try {
      for (const idx of groups.values()) {
        const group = idx.map((i) => prepared[i]);
        const out = await this.decodeToHost(group, imageIndex, multimask, h, w, prompts[idx[0]].returnLogits ?? false);
        idx.forEach((i, j) => (results[i] = out[j]));
      }
    } finally {
      for (const p of prepared) p.mask?.dispose();
    }
    return results;
  }

  /**
   * Low-level batched decoding on the device, for callers that post-process on the device
   * (the automatic mask generator). coords [B, N, 2] are model-input pixels (0..imageSize),
   * labels [B, N]. The caller disposes the result.
   */
  predictTensors(
    coords: tf.Tensor3D,
    labels: tf.Tensor2D,
    options: { multimaskOutput?: boolean; maskInput?: tf.Tensor4D; imageIndex?: number } = {},
  ): PredictTensors {
    checkPromptTensors(coords, labels, options.maskInput, this.maskInputSize);
    const b = coords.shape[0];
    if (b <= DECODER_CHUNK) return this.decode(coords, labels, options);
    // decode in chunks: a batch of 64 prompts would need gigabytes of activations at once
    const parts: PredictTensors[] = [];
    for (let i = 0; i < b; i += DECODER_CHUNK) {
      const n = Math.min(DECODER_CHUNK, b - i);
      parts.push(
        tf.tidy(() =>
          this.decode(tf.slice(coords, [i, 0, 0], [n, -1, -1]), tf.slice(labels, [i, 0], [n, -1]), {
            ...options,
            maskInput: options.maskInput && tf.slice(options.maskInput, [i, 0, 0, 0], [n, -1, -1, -1]),
          }),
        ),
      );
    }
    const out = tf.tidy(() => ({
      lowResMasks: tf.concat(parts.map((p) => p.lowResMasks)) as tf.Tensor4D,
      ious: tf.concat(parts.map((p) => p.ious)) as tf.Tensor2D,
      objectScoreLogits: tf.concat(parts.map((p) => p.objectScoreLogits)) as tf.Tensor2D,
    }));
    for (const p of parts) tf.dispose([p.lowResMasks, p.ious, p.objectScoreLogits]);
    return out;
  }

  /**
   * predictTensors on the executor's own prompt decoder when it has one (ONNX Runtime), else on
   * the TF.js layers: the batched decoding the automatic mask generator uses. Same inputs and
   * outputs as predictTensors; the caller disposes the result.
   */
  async decodeTensors(
    coords: tf.Tensor3D,
    labels: tf.Tensor2D,
    options: { multimaskOutput?: boolean; maskInput?: tf.Tensor4D; imageIndex?: number } = {},
  ): Promise<PredictTensors> {
    checkPromptTensors(coords, labels, options.maskInput, this.maskInputSize);
    const { features } = this.requireState();
    const imageIndex = options.imageIndex ?? 0;
    const multimaskOutput = options.multimaskOutput ?? true;
    // SAM 2 features always carry highResFeats (setImage and setImageFeatures check it)
    const ext =
      this.model.kind === 'sam1'
        ? undefined
        : await this.model.executor.decode?.({
            features: features as ImageFeatures,
            imageIndex,
            coords,
            labels,
            maskInput: options.maskInput,
            multimaskOutput,
          });
    return ext ?? this.predictTensors(coords, labels, { ...options, multimaskOutput, imageIndex });
  }

  private decode(
    coords: tf.Tensor3D,
    labels: tf.Tensor2D,
    options: { multimaskOutput?: boolean; maskInput?: tf.Tensor4D; imageIndex?: number },
  ): PredictTensors {
    const { features, decoderCache } = this.requireState();
    const i = options.imageIndex ?? 0;
    // kept: the cache lives as long as the image, also when this runs inside a caller's tidy
    let cache = decoderCache[i];
    if (!cache) {
      cache = this.precomputeImages(features, i)[0];
      tf.keep(cache.src);
      Object.values(cache.block0).forEach((t) => tf.keep(t));
      decoderCache[i] = cache;
    }
    return tf.tidy(() => {
      const pick = (t: tf.Tensor4D) =>
        t.shape[0] === 1 ? t : (tf.slice(t, [i, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D);
      const high = features.highResFeats;
      const out = this.model.forwardSamHeads({
        imageEmbed: pick(features.imageEmbed),
        highRes: high ? [pick(high[0]), pick(high[1])] : undefined,
        points: { coords, labels },
        maskInput: options.maskInput,
        multimaskOutput: options.multimaskOutput ?? true,
        cache,
      });
      return { lowResMasks: out.masks, ious: out.iouPred, objectScoreLogits: out.objectScoreLogits };
    });
  }

  private async decodeToHost(
    group: PreparedPrompt[],
    imageIndex: number,
    multimask: boolean,
    h: number,
    w: number,
    returnLogits: boolean,
  ): Promise<PredictResult[]> {
    const b = group.length;
    const s = this.maskInputSize;
    const n = group[0].coords.length;
    const inputs = tf.tidy(() => ({
      coords: tf.tensor3d(
        group.flatMap((p) => p.coords.flat()),
        [b, n, 2],
      ),
      labels: tf.tensor2d(
        group.flatMap((p) => p.labels),
        [b, n],
      ),
      maskInput: group[0].mask
        ? (tf.concat(
            group.map((p) => p.mask as tf.Tensor4D),
            0,
          ) as tf.Tensor4D)
        : undefined,
    }));
    let out: { lowRes: tf.Tensor4D; ious: tf.Tensor2D };
    try {
      const r = await this.decodeTensors(inputs.coords, inputs.labels, {
        multimaskOutput: multimask,
        maskInput: inputs.maskInput,
        imageIndex,
      });
      // planar [B*M, s, s, 1] for host copies and the upsampling
      const [, , , mm] = r.lowResMasks.shape;
      out = {
        lowRes: tf.tidy(() => tf.reshape(tf.transpose(r.lowResMasks, [0, 3, 1, 2]), [b * mm, s, s, 1]) as tf.Tensor4D),
        ious: r.ious,
      };
      tf.dispose([r.lowResMasks, r.objectScoreLogits]);
    } finally {
      tf.dispose([inputs.coords, inputs.labels, ...(inputs.maskInput ? [inputs.maskInput] : [])]);
    }
    const m = out.lowRes.shape[0] / b;
    let lowRes = out.lowRes;
    try {
      const [lowResData, iouData] = (await Promise.all([out.lowRes.data(), out.ious.data()])) as Float32Array[];
      let planes = lowResData;
      if (this.maxHoleArea > 0 || this.maxSprinkleArea > 0) {
        const raw: Float32Array[] = [];
        for (let k = 0; k < b * m; k++) raw.push(lowResData.slice(k * s * s, (k + 1) * s * s));
        removeHolesAndSprinkles(raw, s, s, this.maxHoleArea, this.maxSprinkleArea, this.maskThreshold);
        planes = concatRows(raw);
      }
      let full: (Uint8Array | Float32Array)[];
      if (!returnLogits && !this.requireState().inputHW) {
        // SAM 2 masks: the low-res logits are on the host already, upsample there
        full = upsampleMasks(planes, b * m, s, h, w, this.maskThreshold);
      } else {
        if (planes !== lowResData) lowRes = tf.tensor4d(planes, [b * m, s, s, 1]);
        full = [];
        // full resolution in chunks, on the device until the host copy
        for (let k = 0; k < b * m; k += UPSAMPLE_CHUNK) {
          const c = Math.min(UPSAMPLE_CHUNK, b * m - k);
          const t = tf.tidy(() => {
            const up = this.postprocessLogits(
              c === b * m ? lowRes : (tf.slice(lowRes, [k, 0, 0, 0], [c, -1, -1, -1]) as tf.Tensor4D),
              imageIndex,
            );
            return returnLogits ? up : tf.greater(up, this.maskThreshold);
          });
          const data = (await t.data()) as Uint8Array | Float32Array;
          t.dispose();
          for (let j = 0; j < c; j++) full.push(data.slice(j * h * w, (j + 1) * h * w)); // copies: the chunk's buffer is freed
        }
      }
      const results: PredictResult[] = [];
      const L = MASK_LOGIT_LIMIT;
      for (let i = 0; i < b; i++) {
        const idx = Array.from({ length: m }, (_, j) => i * m + j);
        // one buffer per prompt (the host copy itself for one prompt: a click allocates less)
        const own = b === 1 ? lowResData : lowResData.slice(i * m * s * s, (i + 1) * m * s * s);
        clampInPlace(own, L);
        results.push({
          masks: idx.map((k) =>
            returnLogits
              ? Uint8Array.from(full[k] as Float32Array, (v) => (v > this.maskThreshold ? 1 : 0))
              : (full[k] as Uint8Array),
          ),
          scores: iouData.slice(i * m, (i + 1) * m),
          lowResLogits: idx.map((_, j) => own.subarray(j * s * s, (j + 1) * s * s)),
          logits: returnLogits ? idx.map((k) => full[k] as Float32Array) : undefined,
          width: w,
          height: h,
        });
      }
      return results;
    } finally {
      if (lowRes !== out.lowRes) lowRes.dispose();
      tf.dispose([out.lowRes, out.ious]);
    }
  }

  /**
   * Low-res logits [N, s, s, 1] of image `imageIndex` -> full-resolution logits
   * [N, height, width, 1] (SAM 1: through the padded square, as its reference does).
   */
  postprocessLogits(lowRes: tf.Tensor4D, imageIndex = 0): tf.Tensor4D {
    const state = this.requireState();
    const hw = this.originalSize(imageIndex);
    if (state.inputHW) return postprocessSam1(lowRes, this.imageSize, state.inputHW[imageIndex], hw);
    return upsampleLogits(lowRes, hw[0], hw[1]);
  }

  /** A point of image `imageIndex` (pixels) in model-input pixels. */
  modelCoords(x: number, y: number, imageIndex = 0): [number, number] {
    return toModelCoords(
      x,
      y,
      this.originalSize(imageIndex),
      this.imageSize,
      this.requireState().inputHW?.[imageIndex],
    );
  }

  /** Validates a prompt set and maps it to model-input coordinates (box corners first). */
  private preparePrompt(p: PredictOptions, h: number, w: number, where: string, imageIndex = 0): PreparedPrompt {
    const normalize = p.normalizeCoords ?? true;
    // SAM 1 (whose reference takes pixels only) scales [0, 1] coordinates to image pixels first
    const sam1 = this.model.kind === 'sam1';
    const toModel = (x: number, y: number) =>
      normalize || sam1
        ? this.modelCoords(normalize ? x : x * w, normalize ? y : y * h, imageIndex)
        : toModelCoords(x, y, [1, 1], this.imageSize);
    const coords: number[][] = [];
    const labels: number[] = [];
    if (p.box !== undefined && p.box !== null) {
      const b = Array.from(p.box as ArrayLike<number>);
      check(b.length === 4, `${where}box must be [x0, y0, x1, y1] (4 numbers), got ${b.length}.`);
      check(b.every(Number.isFinite), `${where}box has a non-finite coordinate: [${b}].`);
      coords.push(toModel(b[0], b[1]), toModel(b[2], b[3]));
      labels.push(2, 3);
    }
    if (p.pointCoords !== undefined) {
      const pts = Array.from(p.pointCoords);
      check(p.pointLabels !== undefined, `${where}pointLabels must be given with pointCoords.`);
      const labs = Array.from(p.pointLabels as ArrayLike<number>);
      check(
        labs.length === pts.length,
        `${where}${pts.length} points but ${labs.length} labels: give one label per point.`,
      );
      pts.forEach((pt, i) => {
        const xy = Array.from(pt);
        check(xy.length === 2, `${where}point ${i} must be [x, y], got ${xy.length} numbers.`);
        check(
          xy.every(Number.isFinite),
          `${where}point ${i} is not finite: [${xy}] (points outside the image are allowed, NaN/Infinity are not).`,
        );
        check(
          labs[i] === 0 || labs[i] === 1,
          `${where}the label of point ${i} must be 1 (foreground) or 0 (background), got ${labs[i]}.`,
        );
        coords.push(toModel(xy[0], xy[1]));
        labels.push(labs[i]);
      });
    } else {
      check(p.pointLabels === undefined, `${where}pointLabels given without pointCoords.`);
    }
    check(
      coords.length > 0 || p.maskInput !== undefined,
      `${where}no prompt: give pointCoords/pointLabels, a box, or a maskInput.`,
    );
    let mask: tf.Tensor4D | undefined;
    if (p.maskInput !== undefined) {
      const s = this.maskInputSize;
      const n = p.maskInput instanceof tf.Tensor ? p.maskInput.size : p.maskInput.length;
      check(n === s * s, `${where}maskInput must have ${s}x${s} = ${s * s} values (low-res logits), got ${n}.`);
      mask =
        p.maskInput instanceof tf.Tensor
          ? tf.tidy(() => tf.reshape(tf.cast(p.maskInput as tf.Tensor, 'float32'), [1, s, s, 1]) as tf.Tensor4D) // frees the cast
          : tf.tensor4d(Float32Array.from(p.maskInput), [1, s, s, 1]);
    }
    return { coords, labels, mask };
  }
}

/** predictTensors' shapes, checked before tfjs sees them (its own errors do not say what to pass). */
function checkPromptTensors(coords: tf.Tensor, labels: tf.Tensor, maskInput: tf.Tensor | undefined, s: number): void {
  check(
    coords instanceof tf.Tensor && labels instanceof tf.Tensor,
    'predictTensors takes coords [B, N, 2] and labels [B, N] as tensors.',
  );
  const [b, n] = coords.shape;
  check(coords.rank === 3 && coords.shape[2] === 2, `predictTensors: coords must be [B, N, 2], got [${coords.shape}].`);
  check(
    labels.rank === 2 && labels.shape[0] === b && labels.shape[1] === n,
    `predictTensors: labels must be [${b}, ${n}] to match coords, got [${labels.shape}].`,
  );
  check(b > 0, 'predictTensors: the batch is empty (B = 0).');
  if (maskInput) {
    check(
      maskInput.rank === 4 &&
        maskInput.shape[0] === b &&
        maskInput.shape[1] === s &&
        maskInput.shape[2] === s &&
        maskInput.shape[3] === 1,
      `predictTensors: maskInput must be [${b}, ${s}, ${s}, 1], got [${maskInput.shape}].`,
    );
  } else check(n > 0, 'predictTensors: give at least one point per prompt (N > 0) or a maskInput.');
}

/** Concatenates equally long rows into one array (for one upload). */
export function concatRows(rows: Float32Array[]): Float32Array {
  const n = rows.length ? rows[0].length : 0;
  const out = new Float32Array(rows.length * n);
  rows.forEach((r, i) => out.set(r, i * n));
  return out;
}

/** Clamps every value of `data` to [-limit, limit] (NaN stays NaN). */
function clampInPlace(data: Float32Array, limit: number): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v > limit) data[i] = limit;
    else if (v < -limit) data[i] = -limit;
  }
}
