/**
 * Run-length encodings of masks in the COCO convention: counts over the column-major (Fortran)
 * flattening, starting with a run of zeros; and pycocotools' compressed string form.
 */
import { Sam2Error } from '../../errors';

export interface UncompressedRle {
  size: [number, number];
  counts: number[];
}

export interface CocoRle {
  size: [number, number];
  counts: string;
}

/** Encodes a row-major h x w mask (non-zero inside). */
export function maskToRle(mask: ArrayLike<number>, h: number, w: number): UncompressedRle {
  const counts: number[] = [];
  let current = 0;
  let run = 0;
  for (let x = 0; x < w; x++)
    for (let y = 0; y < h; y++) {
      const v = mask[y * w + x] ? 1 : 0;
      if (v !== current) {
        counts.push(run);
        run = 0;
        current = v;
      }
      run++;
    }
  counts.push(run);
  return { size: [h, w], counts };
}

/** Decodes to a row-major 0/1 mask. */
export function rleToMask(rle: UncompressedRle): Uint8Array {
  const [h, w] = rle.size;
  const mask = new Uint8Array(h * w);
  let idx = 0;
  let value = 0;
  for (const c of rle.counts) {
    if (value) for (let i = idx; i < idx + c; i++) mask[(i % h) * w + Math.floor(i / h)] = 1;
    idx += c;
    value ^= 1;
  }
  if (idx !== h * w) throw new Sam2Error('INPUT', `RLE counts sum to ${idx}, expected ${h}x${w} = ${h * w}.`);
  return mask;
}

export function areaFromRle(rle: UncompressedRle): number {
  let a = 0;
  for (let i = 1; i < rle.counts.length; i += 2) a += rle.counts[i];
  return a;
}

/**
 * pycocotools' compressed counts string: each count (after the third, as the difference to the
 * count two before) in 5-bit groups, low first, with a continuation bit, offset by 48.
 */
export function cocoEncodeRle(rle: UncompressedRle): CocoRle {
  let s = '';
  const c = rle.counts;
  for (let i = 0; i < c.length; i++) {
    let x = i > 2 ? c[i] - c[i - 2] : c[i];
    for (;;) {
      let ch = x & 0x1f;
      x >>= 5; // arithmetic shift keeps the sign
      const more = ch & 0x10 ? x !== -1 : x !== 0;
      if (more) ch |= 0x20;
      s += String.fromCharCode(ch + 48);
      if (!more) break;
    }
  }
  return { size: [...rle.size] as [number, number], counts: s };
}

/** Inverse of cocoEncodeRle. */
export function cocoDecodeRle(rle: CocoRle): UncompressedRle {
  const counts: number[] = [];
  const s = rle.counts;
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = 1;
    let ch = 0;
    while (more) {
      ch = s.charCodeAt(p++) - 48;
      x |= (ch & 0x1f) << (5 * k);
      more = ch & 0x20;
      k++;
      if (!more && ch & 0x10) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return { size: [...rle.size] as [number, number], counts };
}
