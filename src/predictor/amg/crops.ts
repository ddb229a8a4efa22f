/**
 * Crops of the automatic mask generator: the whole image plus layers of overlapping crops, and
 * the moves between crop and image coordinates.
 */
import type { RgbImage } from '../image_input';
import type { Point } from './grids';

/** A box [x0, y0, x1, y1] (crop boxes: x1, y1 exclusive; mask boxes: inclusive pixel indices). */
export type Box = [number, number, number, number];

/**
 * The whole image, then for each layer i a (2^(i+1))^2 grid of crops whose neighbours overlap
 * by `overlapRatio` x short side x 2^-i pixels. Boxes come with their layer index, in the
 * reference's order (x0 outer loop, y0 inner).
 */
export function generateCropBoxes(height: number, width: number, nLayers: number, overlapRatio: number): { boxes: Box[]; layers: number[] } {
  const boxes: Box[] = [[0, 0, width, height]];
  const layers = [0];
  const shortSide = Math.min(height, width);
  // crop side such that n crops with (n - 1) overlaps cover the image
  const cropLen = (orig: number, n: number, overlap: number) => Math.ceil((overlap * (n - 1) + orig) / n);
  for (let layer = 0; layer < nLayers; layer++) {
    const n = 2 ** (layer + 1);
    const overlap = Math.trunc(overlapRatio * shortSide * (2 / n));
    const cw = cropLen(width, n, overlap);
    const ch = cropLen(height, n, overlap);
    const x0s = Array.from({ length: n }, (_, i) => Math.trunc((cw - overlap) * i));
    const y0s = Array.from({ length: n }, (_, i) => Math.trunc((ch - overlap) * i));
    for (const x0 of x0s)
      for (const y0 of y0s) {
        boxes.push([x0, y0, Math.min(x0 + cw, width), Math.min(y0 + ch, height)]);
        layers.push(layer + 1);
      }
  }
  return { boxes, layers };
}

/** Shifts a box from crop to image coordinates. */
export function uncropBox(box: Box, crop: Box): Box {
  return [box[0] + crop[0], box[1] + crop[1], box[2] + crop[0], box[3] + crop[1]];
}

/** Shifts a point from crop to image coordinates. */
export function uncropPoint(p: Point, crop: Box): Point {
  return [p[0] + crop[0], p[1] + crop[1]];
}

/** Pastes a row-major crop-sized mask into an image-sized one (zeros outside the crop). */
export function uncropMask(mask: Uint8Array, crop: Box, height: number, width: number): Uint8Array {
  const [x0, y0, x1, y1] = crop;
  if (x0 === 0 && y0 === 0 && x1 === width && y1 === height) return mask;
  const w = x1 - x0;
  const out = new Uint8Array(height * width);
  for (let y = 0; y < y1 - y0; y++) out.set(mask.subarray(y * w, (y + 1) * w), (y + y0) * width + x0);
  return out;
}

/** The pixels of `crop` as a new packed RGB image (the image itself for the full crop). */
export function cropImage(img: RgbImage, crop: Box): RgbImage {
  const [x0, y0, x1, y1] = crop;
  if (x0 === 0 && y0 === 0 && x1 === img.width && y1 === img.height) return img;
  const w = x1 - x0;
  const h = y1 - y0;
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) data.set(img.data.subarray(((y + y0) * img.width + x0) * 3, ((y + y0) * img.width + x1) * 3), y * w * 3);
  return { data, width: w, height: h };
}

/** [x0, y0, x1, y1] -> [x0, y0, x1 - x0, y1 - y0]. */
export function boxXyxyToXywh(b: Box): Box {
  return [b[0], b[1], b[2] - b[0], b[3] - b[1]];
}
