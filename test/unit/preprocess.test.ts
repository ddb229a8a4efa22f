import { expect } from 'chai';
import {
  IMAGENET_MEAN,
  IMAGENET_STD,
  preprocessImage,
  resizeAntialiasBilinear,
  type RgbImage,
} from '../../src/ops/transforms';

/** The definition preprocessImage fuses: scale to [0, 1], planar antialiased resize, normalize. */
function stepByStep(img: RgbImage, size: number): Float32Array {
  const { data, width: w, height: h } = img;
  const planar = new Float32Array(3 * h * w);
  for (let i = 0; i < h * w; i++)
    for (let c = 0; c < 3; c++) planar[c * h * w + i] = Math.fround(data[3 * i + c] / 255);
  const resized = resizeAntialiasBilinear(planar, 3, h, w, size, size);
  const out = new Float32Array(size * size * 3);
  for (let c = 0; c < 3; c++)
    for (let i = 0; i < size * size; i++)
      out[3 * i + c] = (resized[c * size * size + i] - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
  return out;
}

describe('preprocessImage (fused resize + normalize)', () => {
  // downscaling in both directions, upscaling in both, and one of each
  for (const [w, h, size] of [
    [181, 120, 64],
    [37, 50, 96],
    [150, 41, 64],
  ]) {
    it(`equals the step-by-step definition bit for bit (${w}x${h} -> ${size})`, () => {
      let seed = w * 7919 + h;
      const data = Uint8Array.from({ length: w * h * 3 }, () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24);
      const img = { data, width: w, height: h };
      const x = preprocessImage(img, size);
      expect(x.shape).to.deep.equal([1, size, size, 3]);
      const got = x.dataSync() as Float32Array;
      x.dispose();
      const want = stepByStep(img, size);
      let diff = 0;
      for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) diff++;
      expect(diff).to.equal(0);
    });
  }
});
