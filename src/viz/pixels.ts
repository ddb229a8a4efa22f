/**
 * Mask pictures as RGBA pixels, shared by the Node build (PNG through jimp) and the browser
 * build (ImageData, or PNG through viz/png.ts): no I/O and no dependencies here.
 */
import { check } from '../errors';
import type { RgbImage } from '../predictor/image_input';

/** RGBA pixels; in browsers a real `ImageData` (drawable with `putImageData`). */
export type RgbaImage = { data: Uint8ClampedArray; width: number; height: number };

function rgba(width: number, height: number): RgbaImage {
  if (typeof ImageData !== 'undefined') return new ImageData(width, height);
  return { data: new Uint8ClampedArray(width * height * 4), width, height };
}

/** A distinct colour per mask index (RGB). */
export function maskColor(i: number): [number, number, number] {
  const palette: [number, number, number][] = [
    [30, 144, 255],
    [255, 99, 71],
    [50, 205, 50],
    [255, 215, 0],
    [186, 85, 211],
    [0, 206, 209],
    [255, 140, 0],
    [199, 21, 133],
    [127, 255, 0],
    [70, 130, 180],
  ];
  return palette[i % palette.length];
}

export function checkMask(mask: ArrayLike<number>, width: number, height: number, where: string) {
  check(
    Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0,
    `${where}: width and height must be positive integers, got ${width}x${height}.`,
  );
  check(
    mask?.length === width * height,
    `${where}: a mask must hold width*height = ${width * height} values (row-major), got ${mask?.length}; pass the masks at the image's size.`,
  );
}

/** RGBA pixels of a 0/1 mask (white inside, black outside; `ImageData` in browsers). */
export function maskToImageData(mask: ArrayLike<number>, width: number, height: number): RgbaImage {
  checkMask(mask, width, height, 'maskToImageData');
  const out = rgba(width, height);
  const d = out.data;
  for (let i = 0; i < width * height; i++) {
    const v = mask[i] ? 255 : 0;
    d[4 * i] = d[4 * i + 1] = d[4 * i + 2] = v;
    d[4 * i + 3] = 255;
  }
  return out;
}

export interface OverlayOptions {
  /** Opacity of the mask colours (default 0.5). */
  alpha?: number;
  /** Points [x, y] with labels (1 green, 0 red). */
  points?: { xy: [number, number]; label: number }[];
  /** Boxes [x0, y0, x1, y1], drawn in yellow. */
  boxes?: [number, number, number, number][];
}

/**
 * Blends each mask in its colour over the image, darkens mask outlines, and draws prompt
 * markers. Returns RGBA pixels (`ImageData` in browsers).
 */
export function overlayImageData(
  image: RgbImage,
  masks: ArrayLike<number>[],
  opts: OverlayOptions = {},
  where = 'overlayImageData',
): RgbaImage {
  const { width: w, height: h } = image;
  check(
    image.data?.length === w * h * 3,
    `${where}: the image must be RGB bytes of length width*height*3 = ${w * h * 3}, got ${image.data?.length}.`,
  );
  masks.forEach((m, k) => checkMask(m, w, h, `${where} mask ${k}`));
  const alpha = opts.alpha ?? 0.5;
  const out = rgba(w, h);
  const d = out.data;
  for (let i = 0; i < w * h; i++) {
    d[4 * i] = image.data[3 * i];
    d[4 * i + 1] = image.data[3 * i + 1];
    d[4 * i + 2] = image.data[3 * i + 2];
    d[4 * i + 3] = 255;
  }
  const set = (x: number, y: number, c: [number, number, number]) => {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    const o = 4 * (y * w + x);
    [d[o], d[o + 1], d[o + 2]] = c;
  };
  masks.forEach((m, k) => {
    const c = maskColor(k);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        if (!m[i]) continue;
        const edge =
          x === 0 || y === 0 || x === w - 1 || y === h - 1 || !m[i - 1] || !m[i + 1] || !m[i - w] || !m[i + w];
        const a = edge ? 0.9 : alpha;
        for (let ch = 0; ch < 3; ch++) d[4 * i + ch] = Math.round(d[4 * i + ch] * (1 - a) + c[ch] * a);
      }
  });
  const r = Math.max(3, Math.round(Math.min(w, h) / 100));
  for (const p of opts.points ?? []) {
    const c: [number, number, number] = p.label === 1 ? [0, 220, 0] : [230, 0, 0];
    for (let dy = -r; dy <= r; dy++)
      for (let dx = -r; dx <= r; dx++) {
        const rr = dx * dx + dy * dy;
        if (rr <= r * r)
          set(Math.round(p.xy[0]) + dx, Math.round(p.xy[1]) + dy, rr >= (r - 1) * (r - 1) ? [255, 255, 255] : c);
      }
  }
  for (const [x0, y0, x1, y1] of opts.boxes ?? []) {
    for (let t = 0; t < 2; t++) {
      for (let x = Math.round(x0); x <= Math.round(x1); x++) {
        set(x, Math.round(y0) + t, [255, 215, 0]);
        set(x, Math.round(y1) - t, [255, 215, 0]);
      }
      for (let y = Math.round(y0); y <= Math.round(y1); y++) {
        set(Math.round(x0) + t, y, [255, 215, 0]);
        set(Math.round(x1) - t, y, [255, 215, 0]);
      }
    }
  }
  return out;
}
