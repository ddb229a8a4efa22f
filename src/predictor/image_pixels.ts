/** Pixel conversions shared by the Node and browser image readers (no I/O here). */
import * as tf from '@tensorflow/tfjs';
import { Sam2Error } from '../errors';
import type { RgbImage } from '../ops/transforms';

/** Packs interleaved RGB or RGBA bytes into RGB, checking the length first. */
export function toRgb(src: ArrayLike<number>, width: number, height: number, channels: number): RgbImage {
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

/** An HWC tensor (3 or 4 channels, values 0..255) as packed RGB bytes. */
export function tensorToRgb(image: tf.Tensor): RgbImage {
  if (image.rank !== 3 || (image.shape[2] !== 3 && image.shape[2] !== 4)) {
    throw new Sam2Error('INPUT', `Image tensors must be HWC with 3 or 4 channels, got shape [${image.shape}].`);
  }
  const [h, w, c] = image.shape;
  const values = tf.tidy(() => tf.clipByValue(tf.round(tf.cast(image, 'float32')), 0, 255)).dataSync();
  return toRgb(values, w, h, c);
}

/** `{data, width, height[, channels]}` (ImageData included) as packed RGB bytes. */
export function rawToRgb(image: {
  data: ArrayLike<number>;
  width: number;
  height: number;
  channels?: number;
}): RgbImage {
  const channels = image.channels ?? (image.data.length === image.width * image.height * 3 ? 3 : 4);
  return toRgb(image.data, image.width, image.height, channels);
}
