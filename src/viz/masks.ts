/** Turning masks into pictures: mask PNGs and coloured overlays with prompt markers (jimp). */
import { Jimp } from 'jimp';
import type { RgbImage } from '../predictor/image_input';
import { checkMask, overlayImageData, type OverlayOptions } from './pixels';

export { maskColor, maskToImageData, overlayImageData, type OverlayOptions, type RgbaImage } from './pixels';

/** PNG bytes of a 0/1 mask (white inside, black outside). */
export async function maskToPng(mask: ArrayLike<number>, width: number, height: number): Promise<Buffer> {
  checkMask(mask, width, height, 'maskToPng');
  const img = new Jimp({ width, height, color: 0x000000ff });
  const d = img.bitmap.data;
  for (let i = 0; i < width * height; i++) {
    const v = mask[i] ? 255 : 0;
    d[4 * i] = d[4 * i + 1] = d[4 * i + 2] = v;
  }
  return img.getBuffer('image/png');
}

/**
 * Blends each mask in its colour over the image, darkens mask outlines, and draws prompt
 * markers. Returns PNG bytes.
 */
export async function overlayPng(
  image: RgbImage,
  masks: ArrayLike<number>[],
  opts: OverlayOptions = {},
): Promise<Buffer> {
  const px = overlayImageData(image, masks, opts, 'overlayPng');
  const out = new Jimp({ width: px.width, height: px.height, color: 0x000000ff });
  out.bitmap.data.set(px.data);
  return out.getBuffer('image/png');
}
