/** Decoding every image form the predictors accept into packed RGB bytes. */
import * as tf from '@tensorflow/tfjs';
import type { RgbImage } from '../ops/transforms';
import * as fs from 'fs';
import { Jimp } from 'jimp';
import { Sam2Error } from '../errors';

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
 * An image as a file path, PNG/JPEG bytes, a jimp image, raw RGB/RGBA bytes, or an
 * int32/uint8/float32 HWC tensor with values in 0..255.
 */
export type ImageInput = string | Buffer | Uint8Array | BitmapLike | RawImage | tf.Tensor3D;

export type { RgbImage } from '../ops/transforms';

function toRgb(src: ArrayLike<number>, width: number, height: number, channels: number): RgbImage {
  const n = width * height;
  if (src.length !== n * channels) {
    throw new Sam2Error(
      'INPUT',
      `Raw image of ${width}x${height} with ${channels} channels needs ${n * channels} bytes, got ${src.length}.`,
    );
  }
  if (channels === 3) return { data: Uint8Array.from(src), width, height };
  const data = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    data[3 * i] = src[4 * i];
    data[3 * i + 1] = src[4 * i + 1];
    data[3 * i + 2] = src[4 * i + 2];
  }
  return { data, width, height };
}

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
  if (image instanceof tf.Tensor) {
    if (image.rank !== 3 || (image.shape[2] !== 3 && image.shape[2] !== 4)) {
      throw new Sam2Error('INPUT', `Image tensors must be HWC with 3 or 4 channels, got shape [${image.shape}].`);
    }
    const [h, w, c] = image.shape;
    const values = tf.tidy(() => tf.clipByValue(tf.round(tf.cast(image, 'float32')), 0, 255)).dataSync();
    return toRgb(values, w, h, c);
  }
  if (Buffer.isBuffer(image) || image instanceof Uint8Array) return decodeBytes(Buffer.from(image), 'image bytes');
  if ('bitmap' in image) return toRgb(image.bitmap.data, image.bitmap.width, image.bitmap.height, 4);
  if ('data' in image && 'width' in image && 'height' in image) {
    const channels = image.channels ?? (image.data.length === image.width * image.height * 3 ? 3 : 4);
    return toRgb(image.data, image.width, image.height, channels);
  }
  throw new Sam2Error('INPUT', 'Unsupported image: pass a path, PNG/JPEG bytes, a jimp image, {data, width, height} or an HWC tensor.');
}
