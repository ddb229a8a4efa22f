/**
 * The reference's SAM2Transforms: image preprocessing (to [0,1], antialiased bilinear resize
 * to the model size, ImageNet normalization), prompt coordinate mapping, and mask
 * post-processing (hole/sprinkle removal, bilinear upsampling to the image size).
 */
import * as tf from '@tensorflow/tfjs';
import { componentAreas } from './components';

/** Packed RGB bytes (3 per pixel). */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];

interface Taps {
  start: Int32Array;
  size: Int32Array;
  weights: Float32Array;
  maxSize: number;
}

/**
 * Per output index, the input range and normalized weights of PyTorch's antialiased bilinear
 * interpolation (`interpolate(..., antialias=True)`, align_corners=False): a triangle filter
 * whose support widens with the downscaling factor.
 */
function antialiasTaps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const support = scale >= 1 ? scale : 1;
  const invScale = scale >= 1 ? 1 / scale : 1;
  const maxSize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const size = new Int32Array(outSize);
  const weights = new Float32Array(outSize * maxSize);
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    start[i] = xmin;
    size[i] = xmax - xmin;
    let total = 0;
    const w = new Float64Array(xmax - xmin);
    for (let j = 0; j < w.length; j++) {
      w[j] = Math.max(0, 1 - Math.abs((j + xmin - center + 0.5) * invScale));
      total += w[j];
    }
    for (let j = 0; j < w.length; j++) weights[i * maxSize + j] = total > 0 ? w[j] / total : 0;
  }
  return { start, size, weights, maxSize };
}

/**
 * Resizes planar float data [c][h][w] to [c][oh][ow] as torchvision's
 * `Resize(antialias=True)` does on a float tensor: separable, width first, then height.
 */
export function resizeAntialiasBilinear(
  src: Float32Array,
  c: number,
  h: number,
  w: number,
  oh: number,
  ow: number,
): Float32Array {
  const tx = antialiasTaps(w, ow);
  const ty = antialiasTaps(h, oh);
  const tmp = new Float32Array(c * h * ow);
  for (let ch = 0; ch < c; ch++)
    for (let y = 0; y < h; y++) {
      const row = (ch * h + y) * w;
      const dst = (ch * h + y) * ow;
      for (let x = 0; x < ow; x++) {
        let acc = 0;
        const s = tx.start[x];
        const base = x * tx.maxSize;
        for (let k = 0; k < tx.size[x]; k++) acc += src[row + s + k] * tx.weights[base + k];
        tmp[dst + x] = acc;
      }
    }
  const out = new Float32Array(c * oh * ow);
  for (let ch = 0; ch < c; ch++)
    for (let y = 0; y < oh; y++) {
      const s = ty.start[y];
      const base = y * ty.maxSize;
      const dst = (ch * oh + y) * ow;
      for (let k = 0; k < ty.size[y]; k++) {
        const wt = ty.weights[base + k];
        const srcRow = (ch * h + s + k) * ow;
        for (let x = 0; x < ow; x++) out[dst + x] += tmp[srcRow + x] * wt;
      }
    }
  return out;
}

/** fround(v / 255) for every byte value: the [0, 1] scaling of ToTensor, looked up. */
const UNIT_BYTE = Float32Array.from({ length: 256 }, (_, v) => Math.fround(v / 255));

/**
 * The model input for an RGB image: [1, size, size, 3] float32, resized with antialiasing
 * and normalized with the ImageNet mean/std. The same arithmetic as scaling to [0, 1], then
 * `resizeAntialiasBilinear`, then normalizing, fused into two passes: the width pass reads the
 * interleaved bytes, and the height pass writes normalized NHWC rows. No full-size planar copy
 * is made (fresh large buffers cost page faults here: see docs/DEVELOPING.md).
 */
export function preprocessImage(image: RgbImage, size: number): tf.Tensor4D {
  const { data, width: w, height: h } = image;
  const tx = antialiasTaps(w, size);
  const ty = antialiasTaps(h, size);
  // width pass, planar [3][h][size]
  const tmp = new Float32Array(3 * h * size);
  for (let y = 0; y < h; y++) {
    const row = 3 * y * w;
    for (let x = 0; x < size; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      const base = x * tx.maxSize;
      let at = row + 3 * tx.start[x];
      for (let k = 0; k < tx.size[x]; k++, at += 3) {
        const wt = tx.weights[base + k];
        r += UNIT_BYTE[data[at]] * wt;
        g += UNIT_BYTE[data[at + 1]] * wt;
        b += UNIT_BYTE[data[at + 2]] * wt;
      }
      const o = y * size + x;
      tmp[o] = r;
      tmp[h * size + o] = g;
      tmp[2 * h * size + o] = b;
    }
  }
  // height pass, one float32 row at a time (the rounding of resizeAntialiasBilinear's output)
  const nhwc = new Float32Array(size * size * 3);
  const line = new Float32Array(size);
  for (let ch = 0; ch < 3; ch++) {
    const m = IMAGENET_MEAN[ch];
    const sd = IMAGENET_STD[ch];
    for (let y = 0; y < size; y++) {
      line.fill(0);
      const s = ty.start[y];
      const base = y * ty.maxSize;
      for (let k = 0; k < ty.size[y]; k++) {
        const wt = ty.weights[base + k];
        const srcRow = (ch * h + s + k) * size;
        for (let x = 0; x < size; x++) line[x] += tmp[srcRow + x] * wt;
      }
      const o = 3 * y * size + ch;
      for (let x = 0; x < size; x++) nhwc[o + 3 * x] = (line[x] - m) / sd;
    }
  }
  return tf.tensor4d(nhwc, [1, size, size, 3]);
}

/**
 * The one mapping of prompt points to model-input pixels, for a point (x, y) of an image of
 * `origHW` = [height, width] pixels (pass [1, 1] for coordinates already in [0, 1]). SAM 2
 * stretches the image to the size x size input (transform_coords); SAM 1 gives `inputHW`, the
 * image's size after resizing its longest side, and scales by the same factors (apply_coords).
 * Each keeps its reference's order of operations.
 */
export function toModelCoords(
  x: number,
  y: number,
  [h, w]: readonly [number, number],
  size: number,
  inputHW?: readonly [number, number],
): [number, number] {
  if (inputHW) return [x * (inputHW[1] / w), y * (inputHW[0] / h)];
  return [(x / w) * size, (y / h) * size];
}

/**
 * The video predictor's hole filling (fill_holes_in_mask_scores): background components of
 * <= maxArea pixels (8-connected) become 0.1, i.e. foreground. Returns a new array (the input
 * when maxArea <= 0).
 */
export function fillHoles(logits: Float32Array, h: number, w: number, maxArea: number): Float32Array {
  if (maxArea <= 0) return logits;
  const areas = componentAreas(
    logits.map((v) => (v <= 0 ? 1 : 0)),
    h,
    w,
  );
  return logits.map((v, i) => (areas[i] > 0 && areas[i] <= maxArea ? 0.1 : v));
}

/**
 * Replaces small background components (holes, area <= maxHoleArea) of each low-res mask with
 * threshold + 10 and small foreground components (sprinkles) with threshold - 10, as the
 * reference's postprocess_masks does. logits: [M][h*w] on the host, modified in place.
 */
export function removeHolesAndSprinkles(
  logits: Float32Array[],
  h: number,
  w: number,
  maxHoleArea: number,
  maxSprinkleArea: number,
  threshold = 0,
): void {
  for (const m of logits) {
    const original = Float32Array.from(m); // both passes label the unmodified mask
    if (maxHoleArea > 0) {
      const bg = original.map((v) => (v <= threshold ? 1 : 0));
      const areas = componentAreas(bg, h, w);
      for (let i = 0; i < m.length; i++) if (areas[i] > 0 && areas[i] <= maxHoleArea) m[i] = threshold + 10;
    }
    if (maxSprinkleArea > 0) {
      const fg = original.map((v) => (v > threshold ? 1 : 0));
      const areas = componentAreas(fg, h, w);
      for (let i = 0; i < m.length; i++) if (areas[i] > 0 && areas[i] <= maxSprinkleArea) m[i] = threshold - 10;
    }
  }
}

/** Bilinear (align_corners=False, no antialias) upsampling of NHWC logits to (h, w). */
export function upsampleLogits(logits: tf.Tensor4D, h: number, w: number): tf.Tensor4D {
  return tf.image.resizeBilinear(logits, [h, w], false, true);
}

export { upsampleMasks } from './mask_upsample';
