/**
 * Browser image objects (HTMLImageElement, HTMLCanvasElement, HTMLVideoElement, ImageBitmap,
 * OffscreenCanvas) read back as pixels through a 2D canvas. Checks globals before `instanceof`,
 * so this module is inert in Node.
 */
import { Sam2Error } from '../errors';
import type { RgbImage } from '../ops/transforms';
import { toRgb } from './image_pixels';

/** Images a browser can draw on a canvas. `ImageData` is read directly as `{data, width, height}`. */
export type DomImage = HTMLImageElement | HTMLCanvasElement | HTMLVideoElement | ImageBitmap | OffscreenCanvas;

const ctor = (name: string) =>
  (globalThis as Record<string, unknown>)[name] as (new (...a: never[]) => unknown) | undefined;

/** Whether `x` is one of the drawable browser image types. */
export function isDomImage(x: unknown): x is DomImage {
  return ['HTMLImageElement', 'HTMLCanvasElement', 'HTMLVideoElement', 'ImageBitmap', 'OffscreenCanvas'].some((n) => {
    const c = ctor(n);
    return c !== undefined && x instanceof c;
  });
}

function size(img: DomImage): [number, number] {
  if (typeof HTMLImageElement !== 'undefined' && img instanceof HTMLImageElement)
    return [img.naturalWidth, img.naturalHeight];
  if (typeof HTMLVideoElement !== 'undefined' && img instanceof HTMLVideoElement)
    return [img.videoWidth, img.videoHeight];
  return [img.width, img.height];
}

/** Draws the image at its natural size and reads its pixels back as packed RGB. */
export function domImageToRgb(img: DomImage): RgbImage {
  const [width, height] = size(img);
  if (!width || !height) {
    throw new Sam2Error(
      'IMAGE',
      `The image has no pixels yet (${width}x${height}): wait for it to load (img.decode()) before passing it.`,
    );
  }
  const canvas: HTMLCanvasElement | OffscreenCanvas =
    typeof OffscreenCanvas !== 'undefined'
      ? new OffscreenCanvas(width, height)
      : Object.assign(document.createElement('canvas'), { width, height });
  const ctx = canvas.getContext('2d', { willReadFrequently: true }) as
    CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D | null;
  if (!ctx)
    throw new Sam2Error(
      'IMAGE',
      'No 2D canvas context to read the image pixels: pass ImageData or {data, width, height} instead.',
    );
  ctx.drawImage(img, 0, 0);
  let pixels: ImageData;
  try {
    pixels = ctx.getImageData(0, 0, width, height);
  } catch (e) {
    throw new Sam2Error(
      'IMAGE',
      `Cannot read the image pixels (${(e as Error).message.split('\n')[0]}): a cross-origin image needs CORS (img.crossOrigin = 'anonymous').`,
    );
  }
  return toRgb(pixels.data, width, height, 4);
}
