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
 * An image as a file path, PNG/JPEG bytes (JPEGs up to 100 MP), a jimp image, raw RGB/RGBA
 * bytes, or an int32/uint8/float32 HWC tensor with values in 0..255 (a float tensor in 0..1 is
 * refused: multiply it by 255).
 */
export type ImageInput = string | Buffer | Uint8Array | BitmapLike | RawImage | tf.Tensor3D;

export type { RgbImage } from '../ops/transforms';

function toRgb(src: ArrayLike<number>, width: number, height: number, channels: number): RgbImage {
  if (!isSize(width) || !isSize(height)) throw new Sam2Error('INPUT', `The image is empty or has a bad size (${width}x${height}).`);
  if (channels !== 3 && channels !== 4) throw new Sam2Error('INPUT', `Raw images have 3 (RGB) or 4 (RGBA) channels, got ${channels}.`);
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
 * below many phone photos; it needs ~15 bytes per pixel while decoding, so allow 16 plus slack.
 */
export function jpegMemoryLimitMB(width: number, height: number): number {
  return Math.max(512, Math.ceil((width * height * 16) / 2 ** 20) + 64);
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
    const jpeg = size ? { maxMemoryUsageInMB: jpegMemoryLimitMB(size.width, size.height), maxResolutionInMP: MAX_JPEG_MEGAPIXELS } : {};
    img = await Jimp.fromBuffer(bytes, { 'image/jpeg': jpeg } as Parameters<typeof Jimp.fromBuffer>[1]);
  } catch (e) {
    throw new Sam2Error('IMAGE', `Cannot decode ${what}: ${(e as Error).message}. Pass PNG or JPEG bytes.`);
  }
  return toRgb(img.bitmap.data, img.bitmap.width, img.bitmap.height, 4);
}

const isSize = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0;

/**
 * An image tensor's pixels as 0..255 values (rounded, clipped). Float tensors are read as 0..255
 * like the reference's uint8 arrays; one whose values all lie in 0..1 is refused rather than
 * silently read as a black image.
 */
async function tensorPixels(image: tf.Tensor3D): Promise<Float32Array> {
  if (image.dtype === 'float32') {
    const max = tf.tidy(() => tf.max(image));
    const m = (await max.data())[0];
    max.dispose();
    if (m <= 1 && m > 0) {
      throw new Sam2Error('INPUT', `The float image tensor's values are all in 0..1 (max ${m}): image tensors hold 0..255, multiply it by 255 (tf.mul(image, 255)).`);
    }
  }
  const t = tf.tidy(() => tf.clipByValue(tf.round(tf.cast(image, 'float32')), 0, 255));
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose(); // the whole image: ~25 MiB at 1800x1200
  }
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
    throw new Sam2Error('INPUT', `Unsupported image ${image === null ? 'null' : typeof image}: pass a path, PNG/JPEG bytes, a jimp image, {data, width, height} or an HWC tensor.`);
  }
  if (image instanceof tf.Tensor) {
    if (image.rank !== 3 || (image.shape[2] !== 3 && image.shape[2] !== 4)) {
      throw new Sam2Error('INPUT', `Image tensors must be HWC with 3 or 4 channels, got shape [${image.shape}].`);
    }
    const [h, w, c] = image.shape;
    if (h === 0 || w === 0) throw new Sam2Error('INPUT', `The image tensor is empty ([${image.shape}]).`);
    const values = await tensorPixels(image);
    return toRgb(values, w, h, c);
  }
  if (Buffer.isBuffer(image) || image instanceof Uint8Array) return decodeBytes(Buffer.from(image), 'image bytes');
  if ('bitmap' in image) return toRgb(image.bitmap.data, image.bitmap.width, image.bitmap.height, 4);
  if ('data' in image && 'width' in image && 'height' in image) {
    if (!isSize(image.width) || !isSize(image.height)) {
      throw new Sam2Error('INPUT', `Raw image width and height must be positive integers, got ${image.width}x${image.height}.`);
    }
    if (!image.data || typeof (image.data as ArrayLike<number>).length !== 'number') throw new Sam2Error('INPUT', 'Raw image data must be a Uint8Array (or Buffer) of pixels.');
    const channels = image.channels ?? (image.data.length === image.width * image.height * 3 ? 3 : 4);
    return toRgb(image.data, image.width, image.height, channels);
  }
  throw new Sam2Error('INPUT', 'Unsupported image: pass a path, PNG/JPEG bytes, a jimp image, {data, width, height} or an HWC tensor.');
}
