/**
 * The browser build's image reader (replaces predictor/image_input.ts, which needs fs and jimp):
 * URLs are fetched, PNG/JPEG bytes and Blobs are decoded by the browser, and DOM images are
 * read back through a canvas. Same names and result as the Node module.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Error } from '../errors';
import { domImageToRgb, isDomImage } from '../predictor/dom_image';
import type { ImageInput, RgbImage } from '../predictor/image_input';
import { rawToRgb, tensorToRgb } from '../predictor/image_pixels';

export type { ImageInput, RawImage, RgbImage, BitmapLike } from '../predictor/image_input';

async function decodeBlob(blob: Blob, what: string): Promise<RgbImage> {
  let bitmap: ImageBitmap;
  try {
    // no colour management or premultiplication: the pixels the file holds, as PIL reads them
    bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (e) {
    throw new Sam2Error(
      'IMAGE',
      `Cannot decode ${what}: ${(e as Error).message.split('\n')[0]}. Pass PNG or JPEG bytes.`,
    );
  }
  try {
    return domImageToRgb(bitmap);
  } finally {
    bitmap.close();
  }
}

/** Decodes any accepted image form to packed RGB bytes (a string is a URL here). */
export async function readImage(image: ImageInput | Blob | ArrayBuffer): Promise<RgbImage> {
  if (typeof image === 'string') {
    let res: Response;
    try {
      res = await fetch(image);
    } catch (e) {
      throw new Sam2Error('IMAGE', `Cannot fetch image "${image}": ${(e as Error).message.split('\n')[0]}.`);
    }
    if (!res.ok) throw new Sam2Error('IMAGE', `Cannot fetch image "${image}": HTTP ${res.status}.`);
    return decodeBlob(await res.blob(), `image "${image}"`);
  }
  if (image instanceof tf.Tensor) return tensorToRgb(image);
  if (isDomImage(image)) return domImageToRgb(image);
  if (typeof Blob !== 'undefined' && image instanceof Blob) return decodeBlob(image, 'the image blob');
  if (image instanceof ArrayBuffer || image instanceof Uint8Array)
    return decodeBlob(new Blob([image as BlobPart]), 'image bytes');
  if (image && typeof image === 'object' && 'bitmap' in image) {
    return rawToRgb({ ...image.bitmap, channels: 4 });
  }
  if (image && typeof image === 'object' && 'data' in image && 'width' in image && 'height' in image)
    return rawToRgb(image);
  throw new Sam2Error(
    'INPUT',
    'Unsupported image: pass a URL, an <img> (loaded), <canvas>, <video>, ImageBitmap, ImageData, {data, width, height}, PNG/JPEG bytes or a Blob, or an HWC tensor.',
  );
}
