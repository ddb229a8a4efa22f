import { expect } from 'chai';
import { Jimp } from 'jimp';
import { maskColor, maskToImageData, maskToPng, overlayImageData, overlayPng } from '../../src/viz/masks';
import { maskToPng as browserMaskToPng, overlayPng as browserOverlayPng } from '../../src/browser/masks';
import { encodePng } from '../../src/viz/png';
import { expectSam2Error } from '../helpers';

/** RGB of pixel (x, y) of decoded PNG bytes. */
async function pixels(png: Buffer) {
  const img = await Jimp.read(png);
  const { width, data } = img.bitmap;
  return { img, at: (x: number, y: number) => Array.from(data.subarray(4 * (y * width + x), 4 * (y * width + x) + 3)) };
}

/** A w x h mask that is 1 on the rectangle [x0, x1) x [y0, y1). */
function rect(w: number, h: number, x0: number, y0: number, x1: number, y1: number): Uint8Array {
  const m = new Uint8Array(w * h);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * w + x] = 1;
  return m;
}

const grey = (w: number, h: number, v = 100) => ({ width: w, height: h, data: new Uint8Array(w * h * 3).fill(v) });
const blend = (base: number, c: [number, number, number], a: number) =>
  c.map((v) => Math.round(base * (1 - a) + v * a));

describe('visualisation (viz/masks)', () => {
  it('maskToPng writes white inside, black outside, at the mask size', async () => {
    const t0 = Date.now();
    const { img, at } = await pixels(await maskToPng(rect(7, 5, 2, 1, 5, 4), 7, 5));
    expect([img.bitmap.width, img.bitmap.height]).to.deep.equal([7, 5]);
    expect(at(2, 1)).to.deep.equal([255, 255, 255]);
    expect(at(4, 3)).to.deep.equal([255, 255, 255]);
    expect(at(1, 1)).to.deep.equal([0, 0, 0]);
    expect(at(5, 3)).to.deep.equal([0, 0, 0]);
    expect(at(2, 4)).to.deep.equal([0, 0, 0]);
    console.log(`      ${Date.now() - t0} ms`);
  });

  it('gives the first masks distinct colours and cycles the palette', () => {
    const first = Array.from({ length: 10 }, (_, i) => maskColor(i).join(','));
    expect(new Set(first).size).to.equal(10);
    expect(maskColor(10)).to.deep.equal(maskColor(0));
  });

  it('overlayPng blends each mask in its colour, outlines it, and leaves the rest of the image alone', async () => {
    const w = 20,
      h = 20;
    const a = rect(w, h, 2, 2, 10, 10);
    const b = rect(w, h, 12, 12, 18, 18);
    const { at } = await pixels(await overlayPng(grey(w, h), [a, b], { alpha: 0.5 }));
    expect(at(5, 5)).to.deep.equal(blend(100, maskColor(0), 0.5)); // inside a
    expect(at(2, 5)).to.deep.equal(blend(100, maskColor(0), 0.9)); // a's outline
    expect(at(9, 9)).to.deep.equal(blend(100, maskColor(0), 0.9));
    expect(at(15, 15)).to.deep.equal(blend(100, maskColor(1), 0.5)); // inside b
    expect(at(0, 0)).to.deep.equal([100, 100, 100]);
    expect(at(11, 11)).to.deep.equal([100, 100, 100]);
    expect(at(19, 5)).to.deep.equal([100, 100, 100]);
  });

  it('draws positive points green, negative points red (white rim) and boxes yellow', async () => {
    const w = 40,
      h = 30;
    const { at } = await pixels(
      await overlayPng(grey(w, h), [], {
        points: [
          { xy: [8, 8], label: 1 },
          { xy: [30, 8], label: 0 },
        ],
        boxes: [[5, 18, 25, 27]],
      }),
    );
    expect(at(8, 8)).to.deep.equal([0, 220, 0]);
    expect(at(30, 8)).to.deep.equal([230, 0, 0]);
    expect(at(8 + 3, 8)).to.deep.equal([255, 255, 255]); // the rim at radius 3
    expect(at(8 + 5, 8)).to.deep.equal([100, 100, 100]);
    expect(at(15, 18)).to.deep.equal([255, 215, 0]); // top edge
    expect(at(25, 22)).to.deep.equal([255, 215, 0]); // right edge
    expect(at(15, 22)).to.deep.equal([100, 100, 100]); // inside the box
    expect(at(3, 22)).to.deep.equal([100, 100, 100]); // left of it
  });

  it('clips markers at the image border', async () => {
    const { at } = await pixels(
      await overlayPng(grey(10, 10), [], { points: [{ xy: [0, 0], label: 1 }], boxes: [[-5, -5, 50, 50]] }),
    );
    expect(at(0, 0)).to.deep.equal([0, 220, 0]);
    expect(at(9, 9)).to.deep.equal([100, 100, 100]);
  });

  it('rejects masks or images of the wrong size with a Sam2Error', async () => {
    await expectSam2Error(maskToPng(new Uint8Array(10), 4, 3), 'INPUT', /width\*height = 12 .*got 10/);
    await expectSam2Error(overlayPng(grey(4, 3), [new Uint8Array(11)]), 'INPUT', /overlayPng mask 0/);
    await expectSam2Error(
      overlayPng({ width: 4, height: 3, data: new Uint8Array(12) }, []),
      'INPUT',
      /RGB bytes of length width\*height\*3 = 36/,
    );
  });

  describe("without jimp (the browser build's helpers)", () => {
    it('encodePng writes PNGs any reader decodes, compressed or with stored blocks', async () => {
      const w = 300;
      const h = 250; // > 64 KiB of rows: several stored blocks
      const rgba = new Uint8Array(w * h * 4).map((_, i) => (i * 37 + (i >> 10)) % 256);
      const saved = globalThis.CompressionStream;
      for (const compress of [true, false]) {
        if (!compress) (globalThis as { CompressionStream?: unknown }).CompressionStream = undefined;
        try {
          const img = await Jimp.read(Buffer.from(await encodePng(rgba, w, h, 4)));
          expect([img.bitmap.width, img.bitmap.height]).to.deep.equal([w, h]);
          expect(Buffer.compare(img.bitmap.data, Buffer.from(rgba)), `compress=${compress}`).to.equal(0);
        } finally {
          globalThis.CompressionStream = saved;
        }
      }
    });

    it('browser maskToPng / overlayPng give the same pixels as the jimp ones; overlayImageData gives RGBA', async () => {
      const w = 40;
      const h = 30;
      const masks = [rect(w, h, 5, 5, 20, 20), rect(w, h, 15, 10, 35, 25)];
      const opts = {
        points: [{ xy: [8, 8] as [number, number], label: 1 }],
        boxes: [[2, 2, 30, 28] as [number, number, number, number]],
      };
      const a = await Jimp.read(Buffer.from(await browserOverlayPng(grey(w, h), masks, opts)));
      const b = await Jimp.read(await overlayPng(grey(w, h), masks, opts));
      expect(Buffer.compare(a.bitmap.data, b.bitmap.data)).to.equal(0);
      const m = await Jimp.read(Buffer.from(await browserMaskToPng(masks[0], w, h)));
      const n = await Jimp.read(await maskToPng(masks[0], w, h));
      expect(Buffer.compare(m.bitmap.data, n.bitmap.data)).to.equal(0);
      const px = overlayImageData(grey(w, h), masks, opts);
      expect([px.width, px.height, px.data.length]).to.deep.equal([w, h, w * h * 4]);
      expect(Buffer.compare(Buffer.from(px.data), b.bitmap.data)).to.equal(0);
      expect(Array.from(maskToImageData(masks[0], w, h).data.subarray(0, 4))).to.deep.equal([0, 0, 0, 255]);
    });
  });
});
