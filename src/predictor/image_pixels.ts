/** Pixel conversions shared by the Node and browser image readers (no I/O here). */
import * as tf from '@tensorflow/tfjs';
import { Sam2Error } from '../errors';
import type { RgbImage } from '../ops/transforms';

const isSize = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0;

/** Packs interleaved RGB or RGBA bytes into RGB, checking the size and length first. */
export function toRgb(src: ArrayLike<number>, width: number, height: number, channels: number): RgbImage {
  if (!isSize(width) || !isSize(height))
    throw new Sam2Error('INPUT', `The image is empty or has a bad size (${width}x${height}).`);
  if (channels !== 3 && channels !== 4)
    throw new Sam2Error('INPUT', `Raw images have 3 (RGB) or 4 (RGBA) channels, got ${channels}.`);
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

/**
 * An HWC tensor (3 or 4 channels, values 0..255) as packed RGB bytes: rounded and clipped like the
 * reference's uint8 arrays. A float tensor whose values all lie in 0..1 is refused rather than
 * silently read as a black image.
 */
export async function tensorToRgb(image: tf.Tensor): Promise<RgbImage> {
  if (image.rank !== 3 || (image.shape[2] !== 3 && image.shape[2] !== 4)) {
    throw new Sam2Error('INPUT', `Image tensors must be HWC with 3 or 4 channels, got shape [${image.shape}].`);
  }
  const [h, w, c] = image.shape;
  if (h === 0 || w === 0) throw new Sam2Error('INPUT', `The image tensor is empty ([${image.shape}]).`);
  if (image.dtype === 'float32') {
    const max = tf.tidy(() => tf.max(image));
    const m = (await max.data())[0];
    max.dispose();
    if (m <= 1 && m > 0) {
      throw new Sam2Error(
        'INPUT',
        `The float image tensor's values are all in 0..1 (max ${m}): image tensors hold 0..255, multiply it by 255 (tf.mul(image, 255)).`,
      );
    }
  }
  const t = tf.tidy(() => tf.clipByValue(tf.round(tf.cast(image, 'float32')), 0, 255));
  try {
    return toRgb(await t.data(), w, h, c);
  } finally {
    t.dispose(); // the whole image: ~25 MiB at 1800x1200
  }
}

/** `{data, width, height[, channels]}` (ImageData included) as packed RGB bytes. */
export function rawToRgb(image: {
  data: ArrayLike<number>;
  width: number;
  height: number;
  channels?: number;
}): RgbImage {
  if (!isSize(image.width) || !isSize(image.height)) {
    throw new Sam2Error(
      'INPUT',
      `Raw image width and height must be positive integers, got ${image.width}x${image.height}.`,
    );
  }
  if (!image.data || typeof image.data.length !== 'number')
    throw new Sam2Error('INPUT', 'Raw image data must be a Uint8Array (or Buffer) of pixels.');
  const channels = image.channels ?? (image.data.length === image.width * image.height * 3 ? 3 : 4);
  return toRgb(image.data, image.width, image.height, channels);
}
