/**
 * The browser build's mask pictures (replaces viz/masks.ts, which needs jimp): PNGs as
 * `Uint8Array` through a small encoder, and `ImageData` for canvases.
 */
import type { RgbImage } from '../predictor/image_input';
import { encodePng } from '../viz/png';
import { checkMask, overlayImageData, type OverlayOptions } from '../viz/pixels';

export { maskColor, maskToImageData, overlayImageData, type OverlayOptions, type RgbaImage } from '../viz/pixels';

/** PNG bytes of a 0/1 mask (white inside, black outside). */
export async function maskToPng(mask: ArrayLike<number>, width: number, height: number): Promise<Uint8Array> {
  checkMask(mask, width, height, 'maskToPng');
  const gray = new Uint8Array(width * height);
  for (let i = 0; i < gray.length; i++) gray[i] = mask[i] ? 255 : 0;
  return encodePng(gray, width, height, 1);
}

/** The overlay of `overlayImageData` as PNG bytes. */
export async function overlayPng(
  image: RgbImage,
  masks: ArrayLike<number>[],
  opts: OverlayOptions = {},
): Promise<Uint8Array> {
  const px = overlayImageData(image, masks, opts, 'overlayPng');
  return encodePng(px.data, px.width, px.height, 4);
}
