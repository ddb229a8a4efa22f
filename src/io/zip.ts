/**
 * Minimal zip reader for torch.save archives: central directory (with zip64 records), entries
 * located through their local headers (whose extra fields differ from the central ones), data
 * read lazily by offset so large checkpoints are never loaded whole.
 */
import * as fs from 'fs';
import * as zlib from 'zlib';
import { Sam2Error } from '../errors';

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
  /** CRC-32 of the uncompressed data, from the central directory. */
  crc32: number;
}

/** Random access to a byte source (a file, or a buffer in tests). */
export interface ByteSource {
  size: number;
  read(offset: number, length: number): Buffer;
  close(): void;
}

export function fileSource(path: string): ByteSource {
  const fd = fs.openSync(path, 'r');
  const size = fs.fstatSync(fd).size;
  return {
    size,
    read(offset, length) {
      const buf = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const n = fs.readSync(fd, buf, done, length - done, offset + done);
        if (n === 0) break;
        done += n;
      }
      return done === length ? buf : buf.subarray(0, done);
    },
    close: () => fs.closeSync(fd),
  };
}

export function bufferSource(buf: Buffer): ByteSource {
  return { size: buf.length, read: (o, l) => buf.subarray(o, Math.min(buf.length, o + l)), close: () => undefined };
}

const CRC_CHUNK = 16 * 1024 * 1024;

let crcTable: Uint32Array | undefined;
/** CRC-32 (zip's), with Node's native zlib.crc32 when present (Node >= 20.15). */
export function crc32(data: Uint8Array, value = 0): number {
  const native = (zlib as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
  if (native) return native(data, value);
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~value >>> 0;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

function corrupt(what: string, why: string): Sam2Error {
  return new Sam2Error('CHECKPOINT', `${what} is truncated or corrupt (${why}). Download it again.`);
}

export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();

  constructor(
    readonly source: ByteSource,
    readonly what = 'checkpoint',
  ) {
    const size = source.size;
    const tailLen = Math.min(size, 65557);
    const tail = source.read(size - tailLen, tailLen);
    let eocd = -1;
    for (let i = tail.length - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === EOCD) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw corrupt(what, 'no end-of-central-directory record');
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = eocd - 20;
      if (loc < 0 || tail.readUInt32LE(loc) !== ZIP64_LOCATOR) throw corrupt(what, 'zip64 locator missing');
      const recOffset = Number(tail.readBigUInt64LE(loc + 8));
      const rec = source.read(recOffset, 56);
      if (rec.length < 56 || rec.readUInt32LE(0) !== ZIP64_EOCD) throw corrupt(what, 'bad zip64 end record');
      count = Number(rec.readBigUInt64LE(32));
      cdSize = Number(rec.readBigUInt64LE(40));
      cdOffset = Number(rec.readBigUInt64LE(48));
    }
    if (cdOffset + cdSize > size) throw corrupt(what, 'central directory past the end of the file');
    const cd = source.read(cdOffset, cdSize);
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL) throw corrupt(what, 'bad central directory entry');
      const method = cd.readUInt16LE(p + 10);
      const crc = cd.readUInt32LE(p + 16);
      let compressedSize = cd.readUInt32LE(p + 20);
      let usize = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let localHeaderOffset = cd.readUInt32LE(p + 42);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      // zip64 extended information: the 0xFFFFFFFF fields, in order
      let e = p + 46 + nameLen;
      const eEnd = e + extraLen;
      while (e + 4 <= eEnd) {
        const id = cd.readUInt16LE(e);
        const len = cd.readUInt16LE(e + 2);
        if (id === 0x0001) {
          let q = e + 4;
          if (usize === 0xffffffff) {
            usize = Number(cd.readBigUInt64LE(q));
            q += 8;
          }
          if (compressedSize === 0xffffffff) {
            compressedSize = Number(cd.readBigUInt64LE(q));
            q += 8;
          }
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = Number(cd.readBigUInt64LE(q));
        }
        e += 4 + len;
      }
      this.entries.set(name, { name, method, compressedSize, size: usize, localHeaderOffset, crc32: crc });
      p = eEnd + commentLen;
    }
  }

  /** Offset of an entry's data, read from its local header. */
  private dataOffset(entry: ZipEntry): number {
    const h = this.source.read(entry.localHeaderOffset, 30);
    if (h.length < 30 || h.readUInt32LE(0) !== LOCAL) throw corrupt(this.what, `bad local header for ${entry.name}`);
    const offset = entry.localHeaderOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
    if (offset + entry.compressedSize > this.source.size)
      throw corrupt(this.what, `${entry.name} runs past the end of the file`);
    return offset;
  }

  /** Entries whose CRC-32 was already checked (each is checked once, on first read). */
  private readonly verified = new Set<string>();

  /** The bytes of an entry (stored or deflated), checked against its CRC-32. `label` names it in errors. */
  read(name: string, label = name): Buffer {
    const entry = this.entries.get(name);
    if (!entry) throw corrupt(this.what, `missing entry ${name}`);
    const raw = this.source.read(this.dataOffset(entry), entry.compressedSize);
    let data: Buffer;
    if (entry.method === 0) data = raw;
    else if (entry.method === 8) {
      try {
        data = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size) });
      } catch (e) {
        throw corrupt(this.what, `${label} does not inflate: ${(e as Error).message}`);
      }
    } else
      throw new Sam2Error(
        'CHECKPOINT',
        `${this.what}: entry ${name} uses unsupported zip compression method ${entry.method}.`,
      );
    if (data.length !== entry.size)
      throw corrupt(this.what, `${label} has ${data.length} bytes, the zip directory says ${entry.size}`);
    this.checkCrc(entry, crc32(data), label);
    return data;
  }

  /** Reads `length` bytes at `offset` inside a stored entry without reading the rest. */
  readRange(name: string, offset: number, length: number, label = name): Buffer {
    const entry = this.entries.get(name);
    if (!entry) throw corrupt(this.what, `missing entry ${name}`);
    if (entry.method !== 0) return this.read(name, label).subarray(offset, offset + length);
    if (offset + length > entry.size) throw corrupt(this.what, `${label} is shorter than its tensors need`);
    const start = this.dataOffset(entry);
    const bytes = this.source.read(start + offset, length);
    if (!this.verified.has(name)) {
      if (offset === 0 && length === entry.size) this.checkCrc(entry, crc32(bytes), label);
      else {
        // a view on part of a storage: check the whole entry once, in bounded chunks
        let c = 0;
        for (let o = 0; o < entry.size; o += CRC_CHUNK)
          c = crc32(this.source.read(start + o, Math.min(CRC_CHUNK, entry.size - o)), c);
        this.checkCrc(entry, c, label);
      }
    }
    return bytes;
  }

  private checkCrc(entry: ZipEntry, crc: number, label: string): void {
    if (crc !== entry.crc32) {
      throw new Sam2Error(
        'CHECKPOINT',
        `${this.what}: the data of ${label} fails its CRC-32 check (the file is corrupt). Download it again.`,
      );
    }
    this.verified.add(entry.name);
  }

  close(): void {
    this.source.close();
  }
}
