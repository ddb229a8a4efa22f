/**
 * Mask filters and measures of the automatic mask generator: stability score and boxes on the
 * device for a whole batch, the crop-edge test, and small-region removal on the host.
 */
import * as tf from '@tensorflow/tfjs';
import { connectedComponents } from '../components';
import type { Box } from './crops';

/**
 * Stability score of each mask of `logits` [N, ...]: the IoU between the masks binarized at
 * threshold + offset and at threshold - offset, i.e. count(> t + o) / count(> t - o) (the first
 * set lies inside the second). Counts are exact integers; an all-background mask gives NaN,
 * which no threshold keeps. Returns float32 [N].
 */
export function stabilityScore(logits: tf.Tensor, maskThreshold: number, offset: number): tf.Tensor1D {
  return tf.tidy(() => {
    const flat = tf.reshape(logits, [logits.shape[0], -1]);
    const count = (t: number) => tf.cast(tf.sum(tf.cast(tf.greater(flat, t), 'int32'), 1), 'float32');
    return tf.div(count(maskThreshold + offset), count(maskThreshold - offset)) as tf.Tensor1D;
  });
}

/**
 * Tight boxes [x0, y0, x1, y1] (inclusive pixel indices) around binary masks [N, H, W]
 * (bool or 0/1), as int32 [N, 4]; [0, 0, 0, 0] for an empty mask.
 */
export function batchedMaskToBox(masks: tf.Tensor3D): tf.Tensor2D {
  return tf.tidy(() => {
    const [, h, w] = masks.shape;
    const m = tf.cast(masks, 'int32');
    const rows = tf.max(m, 2); // [N, H]: 1 where the row has a mask pixel
    const cols = tf.max(m, 1); // [N, W]
    // last index = max(i * any_i); first index = len - max((len - i) * any_i)
    const last = (any: tf.Tensor, len: number) => tf.max(tf.mul(any, tf.range(0, len, 1, 'int32')), 1);
    const first = (any: tf.Tensor, len: number) => tf.sub(tf.scalar(len, 'int32'), tf.max(tf.mul(any, tf.range(len, 0, -1, 'int32')), 1));
    const nonEmpty = tf.max(cols, 1);
    const box = tf.stack([first(cols, w), first(rows, h), last(cols, w), last(rows, h)], 1);
    return tf.mul(box, tf.expandDims(nonEmpty, 1)) as tf.Tensor2D;
  });
}

/** Host version of batchedMaskToBox for one row-major h x w mask. */
export function maskToBox(mask: ArrayLike<number>, h: number, w: number): Box {
  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      if (mask[row + x]) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        y1 = y;
      }
    }
  }
  return x1 < 0 ? [0, 0, 0, 0] : [x0, y0, x1, y1];
}

/**
 * Whether a mask box (crop coordinates) lies within `atol` px of an edge of the crop that is
 * not also an edge of the image: such masks are probably cut off by the crop, and a larger
 * crop sees the whole object.
 */
export function isBoxNearCropEdge(box: Box, crop: Box, image: Box, atol = 20): boolean {
  const b = [box[0] + crop[0], box[1] + crop[1], box[2] + crop[0], box[3] + crop[1]];
  return b.some((v, i) => Math.abs(v - crop[i]) <= atol && !(Math.abs(v - image[i]) <= atol));
}

/**
 * Removes small regions of a row-major 0/1 mask (8-connected): mode 'holes' fills background
 * components of fewer than `areaThresh` pixels, mode 'islands' deletes foreground components
 * of fewer than `areaThresh` pixels, keeping the largest (the first in raster order among
 * equals) when all are small. Returns the new mask and whether anything changed.
 */
export function removeSmallRegions(
  mask: ArrayLike<number>,
  h: number,
  w: number,
  areaThresh: number,
  mode: 'holes' | 'islands',
): { mask: Uint8Array; changed: boolean } {
  const holes = mode === 'holes';
  const n = h * w;
  const working = new Uint8Array(n);
  for (let i = 0; i < n; i++) working[i] = (mask[i] ? 1 : 0) ^ (holes ? 1 : 0);
  const { labels, areas, count } = connectedComponents(working, h, w);
  const small = new Uint8Array(count + 1);
  let anySmall = false;
  for (let l = 1; l <= count; l++)
    if (areas[l] < areaThresh) {
      small[l] = 1;
      anySmall = true;
    }
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = mask[i] ? 1 : 0;
  if (!anySmall) return { mask: out, changed: false };
  // the labels that end up inside the mask
  const keep = new Uint8Array(count + 1);
  if (holes) {
    keep[0] = 1; // label 0 of the inverted mask is the mask itself
    for (let l = 1; l <= count; l++) keep[l] = small[l];
  } else {
    let largest = 1;
    let anyKept = false;
    for (let l = 1; l <= count; l++) {
      keep[l] = small[l] ^ 1;
      anyKept ||= keep[l] === 1;
      if (areas[l] > areas[largest]) largest = l;
    }
    if (!anyKept) keep[largest] = 1;
  }
  for (let i = 0; i < n; i++) out[i] = keep[labels[i]];
  return { mask: out, changed: true };
}
