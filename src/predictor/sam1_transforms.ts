/**
 * SAM 1's pre- and post-processing (the reference's ResizeLongestSide and Sam.preprocess /
 * postprocess_masks), which differ from SAM 2's: the image keeps its aspect ratio (longest
 * side resized to the model size with PIL's bilinear filter on 8-bit pixels), is normalized in
 * 0..255 units and padded bottom-right with zeros; prompts are scaled by the same factors; mask
 * logits are upscaled to the padded square, cropped to the resized image, then resized to the
 * original size.
 */
import * as tf from '@tensorflow/tfjs';
import type { RgbImage } from './image_input';

/** The reference's pixel_mean / pixel_std (0..255 units). */
export const SAM1_PIXEL_MEAN = [123.675, 116.28, 103.53];
export const SAM1_PIXEL_STD = [58.395, 57.12, 57.375];

/** (height, width) after resizing the longest side of (h, w) to `longSide`, rounded half up. */
export function getPreprocessShape(h: number, w: number, longSide: number): [number, number] {
  const scale = longSide / Math.max(h, w);
  return [Math.floor(h * scale + 0.5), Math.floor(w * scale + 0.5)];
}

/** PIL's fixed-point precision of 8-bit resampling coefficients. */
const PRECISION_BITS = 32 - 8 - 2;

/** PIL's precompute_coeffs for the bilinear (triangle, support 1) filter, in PIL's 8-bit fixed point. */
function pilCoeffs(inSize: number, outSize: number) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterScale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss);
      w[x] = t < 1 ? 1 - t : 0;
      ww += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? w[x] / ww : w[x];
      kk[xx * ksize + x] = Math.trunc(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return { bounds, kk, ksize };
}

const clip8 = (v: number) => {
  const x = v >> PRECISION_BITS;
  return x < 0 ? 0 : x > 255 ? 255 : x;
};

/**
 * Resizes packed RGB bytes exactly as PIL's `Image.resize(size, BILINEAR)` does on an RGB
 * image: separable passes (horizontal, then vertical), each rounded back to 8 bits.
 */
export function resizePilBilinear(img: RgbImage, ow: number, oh: number): RgbImage {
  const { width: w, height: h, data } = img;
  if (ow === w && oh === h) return { data: Uint8Array.from(data), width: w, height: h };
  let src = data;
  let sw = w;
  if (ow !== w) {
    const { bounds, kk, ksize } = pilCoeffs(w, ow);
    const tmp = new Uint8Array(h * ow * 3);
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < ow; xx++) {
        const xmin = bounds[2 * xx];
        const n = bounds[2 * xx + 1];
        for (let c = 0; c < 3; c++) {
          let ss = 1 << (PRECISION_BITS - 1);
          for (let x = 0; x < n; x++) ss += src[(y * w + x + xmin) * 3 + c] * kk[xx * ksize + x];
          tmp[(y * ow + xx) * 3 + c] = clip8(ss);
        }
      }
    src = tmp;
    sw = ow;
  }
  if (oh === h) return { data: Uint8Array.from(src), width: ow, height: oh };
  const { bounds, kk, ksize } = pilCoeffs(h, oh);
  const out = new Uint8Array(oh * ow * 3);
  for (let yy = 0; yy < oh; yy++) {
    const ymin = bounds[2 * yy];
    const n = bounds[2 * yy + 1];
    for (let i = 0; i < sw * 3; i++) {
      let ss = 1 << (PRECISION_BITS - 1);
      for (let y = 0; y < n; y++) ss += src[(y + ymin) * sw * 3 + i] * kk[yy * ksize + y];
      out[yy * ow * 3 + i] = clip8(ss);
    }
  }
  return { data: out, width: ow, height: oh };
}

/**
 * The SAM 1 model input of an RGB image: [1, size, size, 3] float32 NHWC, and the resized
 * (height, width) before padding.
 */
export function preprocessSam1(image: RgbImage, size: number): { input: tf.Tensor4D; inputHW: [number, number] } {
  const [nh, nw] = getPreprocessShape(image.height, image.width, size);
  const resized = resizePilBilinear(image, nw, nh);
  const f = Math.fround;
  const mean = SAM1_PIXEL_MEAN.map(f);
  const std = SAM1_PIXEL_STD.map(f);
  // zeros after normalization: the reference pads the normalized tensor
  const nhwc = new Float32Array(size * size * 3);
  for (let y = 0; y < nh; y++)
    for (let x = 0; x < nw; x++)
      for (let c = 0; c < 3; c++) {
        nhwc[(y * size + x) * 3 + c] = f(f(resized.data[(y * nw + x) * 3 + c] - mean[c]) / std[c]);
      }
  return { input: tf.tensor4d(nhwc, [1, size, size, 3]), inputHW: [nh, nw] };
}

/**
 * postprocess_masks: low-res logits [N, s, s, 1] -> bilinear to the padded square
 * (size x size), crop to inputHW, bilinear to origHW. Returns [N, origH, origW, 1].
 */
export function postprocessSam1(
  lowRes: tf.Tensor4D,
  size: number,
  inputHW: [number, number],
  origHW: [number, number],
): tf.Tensor4D {
  return tf.tidy(() => {
    const n = lowRes.shape[0];
    const square = tf.image.resizeBilinear(lowRes, [size, size], false, true);
    const cropped = tf.slice(square, [0, 0, 0, 0], [n, inputHW[0], inputHW[1], -1]) as tf.Tensor4D;
    return tf.image.resizeBilinear(cropped, origHW, false, true);
  });
}
