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
 * An image as a file path (a URL in browsers), PNG/JPEG bytes (JPEGs up to 100 MP), a jimp image, raw RGB/RGBA bytes
 * (`ImageData` included), an int32/uint8/float32 HWC tensor with values in 0..255 (a float tensor in 0..1 is refused:
 * multiply it by 255), or in
 * browsers an HTMLImageElement, HTMLCanvasElement, HTMLVideoElement, ImageBitmap or OffscreenCanvas.
 */
export type ImageInput = string | Buffer | Uint8Array | BitmapLike | RawImage | tf.Tensor3D | DomImage;

export type { RgbImage } from '../ops/transforms';

/** Largest JPEG decoded, in megapixels (jpeg-js's own resolution limit). */
export const MAX_JPEG_MEGAPIXELS = 100;

/** Width and height from a JPEG's start-of-frame segment, or undefined if it has none. */
export function jpegSize(bytes: Uint8Array): { width: number; height: number } | undefined {
  if (bytes[0] !== 0xff || bytes[1] !== 0xd8) return undefined;
  let p = 2;
  while (p + 9 < bytes.length) {
    if (bytes[p] !== 0xff) return undefined;
    const marker = bytes[p + 1];
    if (marker === 0xff) {
      p++;
      continue;
    }
    const len = (bytes[p + 2] << 8) | bytes[p + 3];
    // SOF0..SOF15 except DHT (c4), JPG (c8) and DAC (cc)
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: (bytes[p + 5] << 8) | bytes[p + 6], width: (bytes[p + 7] << 8) | bytes[p + 8] };
    }
    p += 2 + len;
  }
  return undefined;
}

/**
 * jpeg-js's memory limit for decoding a JPEG of this size: its default (512 MB) stops at ~35 MP,
 * below many phone photos. It counts ~15 bytes per pixel for 4:2:0 chroma and ~19 for 4:4:4
 * (a 50 MP 4:4:4 JPEG needed over 900 MB), so allow 24 plus slack.
 */
export function jpegMemoryLimitMB(width: number, height: number): number {
  return Math.max(512, Math.ceil((width * height * 24) / 2 ** 20) + 64);
}

async function decodeBytes(bytes: Buffer, what: string): Promise<RgbImage> {
  const size = jpegSize(bytes);
  if (size && size.width * size.height > MAX_JPEG_MEGAPIXELS * 1e6) {
    throw new Sam2Error(
      'IMAGE',
      `${what} is a ${size.width}x${size.height} JPEG (${((size.width * size.height) / 1e6).toFixed(0)} MP), more than the ${MAX_JPEG_MEGAPIXELS} MP sam2-tfjs decodes: downscale it first.`,
    );
  }
  let img;
  try {
    const jpeg = size
      ? { maxMemoryUsageInMB: jpegMemoryLimitMB(size.width, size.height), maxResolutionInMP: MAX_JPEG_MEGAPIXELS }
      : {};
    img = await Jimp.fromBuffer(bytes, { 'image/jpeg': jpeg } as Parameters<typeof Jimp.fromBuffer>[1]);
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
  if (image === null || typeof image !== 'object') {
    throw new Sam2Error(
      'INPUT',
      `Unsupported image ${image === null ? 'null' : typeof image}: pass a path, PNG/JPEG bytes, a jimp image, {data, width, height} or an HWC tensor.`,
    );
  }
  if (image instanceof tf.Tensor) return tensorToRgb(image);
  if (isDomImage(image)) return domImageToRgb(image);
  if (Buffer.isBuffer(image) || image instanceof Uint8Array) return decodeBytes(Buffer.from(image), 'image bytes');
  if ('bitmap' in image) return toRgb(image.bitmap.data, image.bitmap.width, image.bitmap.height, 4);
  if ('data' in image && 'width' in image && 'height' in image) return rawToRgb(image);
  throw new Sam2Error(
    'INPUT',
    'Unsupported image: pass a path, PNG/JPEG bytes, a jimp image, {data, width, height} or an HWC tensor.',
  );
}
