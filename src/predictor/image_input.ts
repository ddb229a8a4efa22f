/** Decoding every image form the predictors accept into packed RGB bytes. */
import * as tf from '@tensorflow/tfjs';
import type { RgbImage } from '../ops/transforms';
import * as fs from 'fs';
import { Jimp } from 'jimp';
import { Sam2Error } from '../errors';
import { domImageToRgb, isDomImage, type DomImage } from './dom_image';
import { rawToRgb, tensorToRgb, toRgb } from './image_pixels';

/** Raw pixels: `channels` interleaved bytes per pixel (3 = RGB, 4 = RGBA), row-major. */
export interface RawImage {
  data: Uint8Array | Uint8ClampedArray | Buffer;
  width: number;
  height: number;
  channels?: 3 | 4;
}

/** Anything with a jimp-style bitmap. */
export interface BitmapLike {
  bitmap: { data: Uint8Array | Buffer; width: number; height: number };
}

/**
 * An image as a file path (a URL in browsers), PNG/JPEG bytes, a jimp image, raw RGB/RGBA bytes
 * (`ImageData` included), an int32/uint8/float32 HWC tensor with values in 0..255, or in
 * browsers an HTMLImageElement, HTMLCanvasElement, HTMLVideoElement, ImageBitmap or OffscreenCanvas.
 */
export type ImageInput = string | Buffer | Uint8Array | BitmapLike | RawImage | tf.Tensor3D | DomImage;

export type { RgbImage } from '../ops/transforms';

async function decodeBytes(bytes: Buffer, what: string): Promise<RgbImage> {
  let img;
  try {
    img = await Jimp.read(bytes);
  } catch (e) {
    throw new Sam2Error('IMAGE', `Cannot decode ${what}: ${(e as Error).message}. Pass PNG or JPEG bytes.`);
  }
  return toRgb(img.bitmap.data, img.bitmap.width, img.bitmap.height, 4);
}

/** Decodes any accepted image form to packed RGB bytes. */
export async function readImage(image: ImageInput): Promise<RgbImage> {
  if (typeof image === 'string') {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(image);
    } catch (e) {
      throw new Sam2Error('IMAGE', `Cannot read image file "${image}": ${(e as NodeJS.ErrnoException).code ?? e}.`);
    }
    return decodeBytes(bytes, `image file "${image}"`);
  }
  if (image instanceof tf.Tensor) return tensorToRgb(image);
  if (isDomImage(image)) return domImageToRgb(image);
  if (Buffer.isBuffer(image) || image instanceof Uint8Array) return decodeBytes(Buffer.from(image), 'image bytes');
  if ('bitmap' in image) return toRgb(image.bitmap.data, image.bitmap.width, image.bitmap.height, 4);
  if ('data' in image && 'width' in image && 'height' in image) return rawToRgb(image);
  throw new Sam2Error('INPUT', 'Unsupported image: pass a path, PNG/JPEG bytes, a jimp image, {data, width, height} or an HWC tensor.');
}
