/**
 * Frame preprocessing of the reference video loader: PIL's `Image.resize((S, S))` (bicubic,
 * antialiased, in 8-bit fixed point), then /255 and ImageNet normalization. Reproducing PIL's
 * integer arithmetic exactly keeps the video path bit-compatible with the reference's input.
 */
import * as tf from '@tensorflow/tfjs';
import type { RgbImage } from './image_input';
import { IMAGENET_MEAN, IMAGENET_STD } from '../ops/transforms';

/** Fixed-point precision of PIL's 8-bit resampling. */
const PRECISION_BITS = 32 - 8 - 2;

function bicubic(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** PIL's per-output-pixel input window and integer weights along one axis. */
function coefficients(inSize: number, outSize: number) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const w = new Float64Array(xmax);
    let total = 0;
    for (let x = 0; x < xmax; x++) total += w[x] = bicubic((x + xmin - center + 0.5) / filterScale);
    for (let x = 0; x < xmax; x++) {
      const v = total !== 0 ? w[x] / total : w[x];
      kk[o * ksize + x] = Math.trunc(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[2 * o] = xmin;
    bounds[2 * o + 1] = xmax;
  }
  return { bounds, kk, ksize };
}

function clip8(v: number): number {
  if (v >= 1 << (PRECISION_BITS + 8)) return 255;
  if (v <= 0) return 0;
  return Math.floor(v / (1 << PRECISION_BITS));
}

/** PIL-compatible bicubic resize of packed RGB bytes (horizontal pass, then vertical). */
export function pilResizeBicubic(img: RgbImage, outW: number, outH: number): RgbImage {
  const { data, width: w, height: h } = img;
  const hx = coefficients(w, outW);
  const tmp = new Uint8Array(h * outW * 3);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < outW; x++) {
      const xmin = hx.bounds[2 * x];
      const n = hx.bounds[2 * x + 1];
      const k = x * hx.ksize;
      for (let c = 0; c < 3; c++) {
        let ss = half;
        for (let i = 0; i < n; i++) ss += data[(y * w + xmin + i) * 3 + c] * hx.kk[k + i];
        tmp[(y * outW + x) * 3 + c] = clip8(ss);
      }
    }
  const vy = coefficients(h, outH);
  const out = new Uint8Array(outH * outW * 3);
  for (let y = 0; y < outH; y++) {
    const ymin = vy.bounds[2 * y];
    const n = vy.bounds[2 * y + 1];
    const k = y * vy.ksize;
    for (let x = 0; x < outW * 3; x++) {
      let ss = half;
      for (let i = 0; i < n; i++) ss += tmp[(ymin + i) * outW * 3 + x] * vy.kk[k + i];
      out[y * outW * 3 + x] = clip8(ss);
    }
  }
  return { data: out, width: outW, height: outH };
}

/** A video frame as the model input [1, S, S, 3]: PIL bicubic resize, /255, ImageNet normalization. */
export function preprocessVideoFrame(img: RgbImage, size: number): tf.Tensor4D {
  const resized = pilResizeBicubic(img, size, size).data;
  const out = new Float32Array(resized.length);
  const mean = IMAGENET_MEAN.map(Math.fround);
  const std = IMAGENET_STD.map(Math.fround);
  for (let i = 0; i < resized.length; i++) {
    const c = i % 3;
    out[i] = Math.fround(Math.fround(Math.fround(resized[i] / 255) - mean[c]) / std[c]);
  }
  return tf.tensor4d(out, [1, size, size, 3]);
}
