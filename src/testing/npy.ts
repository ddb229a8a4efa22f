/** Readers for the fixture formats: NumPy .npy files and np.packbits masks. */
import * as fs from 'fs';

export interface NpyArray {
  dtype: string;
  shape: number[];
  data: Float32Array | Uint8Array | Int32Array | Float64Array | BigInt64Array;
}

/** Parses a version 1/2/3 .npy file (little-endian float32/float64/int32/int64/uint8/bool, C order). */
export function readNpy(file: string): NpyArray {
  const buf = fs.readFileSync(file);
  if (buf.readUInt32BE(0) !== 0x934e554d || buf.toString('latin1', 4, 6) !== 'PY') {
    throw new Error(`${file}: not a .npy file`);
  }
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const headerStart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', headerStart, headerStart + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined) throw new Error(`${file}: bad .npy header ${header}`);
  if (fortran) throw new Error(`${file}: Fortran-order arrays are not supported`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  const offset = headerStart + headerLen;
  const bytes = buf.subarray(offset);
  const copy = (n: number) => {
    const ab = new ArrayBuffer(bytes.length);
    new Uint8Array(ab).set(bytes);
    return ab.slice(0, n);
  };
  const count = shape.reduce((a, b) => a * b, 1);
  switch (descr) {
    case '<f4':
      return { dtype: 'float32', shape, data: new Float32Array(copy(count * 4)) };
    case '<f8':
      return { dtype: 'float64', shape, data: new Float64Array(copy(count * 8)) };
    case '<i4':
      return { dtype: 'int32', shape, data: new Int32Array(copy(count * 4)) };
    case '<i8':
      return { dtype: 'int64', shape, data: new BigInt64Array(copy(count * 8)) };
    case '|u1':
    case '|b1':
      return { dtype: descr === '|b1' ? 'bool' : 'uint8', shape, data: new Uint8Array(copy(count)) };
    default:
      throw new Error(`${file}: unsupported dtype ${descr}`);
  }
}

/**
 * Unpacks `np.packbits` masks (each mask flattened row-major, first pixel in the most
 * significant bit, padded per mask) into one 0/1 Uint8Array per mask.
 */
export function unpackMasks(packed: Uint8Array, n: number, h: number, w: number): Uint8Array[] {
  const perMask = Math.ceil((h * w) / 8);
  if (packed.length !== n * perMask) {
    throw new Error(`packbits: expected ${n * perMask} bytes for ${n}x${h}x${w}, got ${packed.length}`);
  }
  const out: Uint8Array[] = [];
  for (let m = 0; m < n; m++) {
    const mask = new Uint8Array(h * w);
    const base = m * perMask;
    for (let i = 0; i < h * w; i++) {
      mask[i] = (packed[base + (i >> 3)] >> (7 - (i & 7))) & 1;
    }
    out.push(mask);
  }
  return out;
}
