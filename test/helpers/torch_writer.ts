/**
 * Writes files in the layout torch.save produces (a zip of `<name>/data.pkl`, one
 * `<name>/data/<key>` entry per storage, `version`, `byteorder`), so tests can build full-size
 * checkpoints without PyTorch. Entries are stored, with data descriptors (as torch writes them)
 * and optional zip64 records.
 */
import * as fs from 'fs';
import { formulaWeight } from '../../src/testing/formula';
import { loadManifest } from '../../src/testing/manifest';

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

function crc32(buf: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/**
 * Pickle (protocol 2) of {"model": OrderedDict(key -> float32 tensor)} the way torch.save writes it;
 * with `flat`, the bare state dict (with its `_metadata` state, as SAM 1's official files are).
 */
export function statePickle(tensors: { key: string; shape: number[] }[], flat = false): Buffer {
  const out: Buffer[] = [];
  const op = (...bytes: number[]) => out.push(Buffer.from(bytes));
  const str = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    out.push(Buffer.from([0x58]), len, b);
  };
  const int = (v: number) => {
    const b = Buffer.alloc(5);
    b[0] = 0x4a;
    b.writeInt32LE(v, 1);
    out.push(b);
  };
  const global = (m: string, n: string) => out.push(Buffer.from(`c${m}\n${n}\n`, 'latin1'));
  const tuple = (xs: number[]) => {
    op(0x28);
    xs.forEach(int);
    op(0x74);
  };
  op(0x80, 2);
  if (!flat) {
    op(0x7d); // EMPTY_DICT
    str('model');
  }
  global('collections', 'OrderedDict');
  op(0x29, 0x52, 0x28); // EMPTY_TUPLE, REDUCE, MARK
  tensors.forEach((t, i) => {
    str(t.key);
    global('torch._utils', '_rebuild_tensor_v2');
    op(0x28, 0x28); // MARK (args), MARK (persistent id)
    str('storage');
    global('torch', 'FloatStorage');
    str(String(i));
    str('cpu');
    int(t.shape.reduce((a, b) => a * b, 1));
    op(0x74, 0x51); // TUPLE, BINPERSID
    int(0);
    tuple(t.shape);
    const stride = t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1));
    tuple(stride);
    op(0x89); // NEWFALSE
    global('collections', 'OrderedDict');
    op(0x29, 0x52, 0x74, 0x52); // EMPTY_TUPLE, REDUCE, TUPLE, REDUCE
  });
  op(0x75); // SETITEMS
  if (flat) {
    // the state dict's instance state {'_metadata': OrderedDict()}, then BUILD
    op(0x7d);
    str('_metadata');
    global('collections', 'OrderedDict');
    op(0x29, 0x52, 0x73, 0x62); // EMPTY_TUPLE, REDUCE, SETITEM, BUILD
  } else op(0x73); // SETITEM
  op(0x2e); // STOP
  return Buffer.concat(out);
}

export interface ZipWriteOptions {
  /** Write zip64 extra fields and end records even for small files. */
  zip64?: boolean;
}

/** Writes a stored zip of entries (name -> bytes), produced lazily one at a time. */
export function writeZip(file: string, entries: Iterable<[string, Uint8Array]>, opts: ZipWriteOptions = {}): void {
  const fd = fs.openSync(file, 'w');
  let pos = 0;
  const put = (b: Uint8Array) => {
    fs.writeSync(fd, b);
    pos += b.length;
  };
  const central: Buffer[] = [];
  let count = 0;
  for (const [name, data] of entries) {
    const nameBuf = Buffer.from(name, 'utf8');
    const offset = pos;
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(opts.zip64 ? 45 : 20, 4);
    local.writeUInt16LE(0x08, 6); // sizes follow in a data descriptor
    local.writeUInt16LE(nameBuf.length, 26);
    put(local);
    put(nameBuf);
    put(data);
    const desc = Buffer.alloc(opts.zip64 ? 24 : 16);
    desc.writeUInt32LE(0x08074b50, 0);
    desc.writeUInt32LE(crc, 4);
    if (opts.zip64) {
      desc.writeBigUInt64LE(BigInt(data.length), 8);
      desc.writeBigUInt64LE(BigInt(data.length), 16);
    } else {
      desc.writeUInt32LE(data.length, 8);
      desc.writeUInt32LE(data.length, 12);
    }
    put(desc);
    const extra = opts.zip64 ? Buffer.alloc(28) : Buffer.alloc(0);
    if (opts.zip64) {
      extra.writeUInt16LE(0x0001, 0);
      extra.writeUInt16LE(24, 2);
      extra.writeBigUInt64LE(BigInt(data.length), 4);
      extra.writeBigUInt64LE(BigInt(data.length), 12);
      extra.writeBigUInt64LE(BigInt(offset), 20);
    }
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(opts.zip64 ? 45 : 20, 4);
    c.writeUInt16LE(opts.zip64 ? 45 : 20, 6);
    c.writeUInt16LE(0x08, 8);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(opts.zip64 ? 0xffffffff : data.length, 20);
    c.writeUInt32LE(opts.zip64 ? 0xffffffff : data.length, 24);
    c.writeUInt16LE(nameBuf.length, 28);
    c.writeUInt16LE(extra.length, 30);
    c.writeUInt32LE(opts.zip64 ? 0xffffffff : offset, 42);
    central.push(c, nameBuf, extra);
    count++;
  }
  const cdOffset = pos;
  for (const b of central) put(b);
  const cdSize = pos - cdOffset;
  if (opts.zip64) {
    const rec = Buffer.alloc(56);
    const recOffset = pos;
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeUInt16LE(45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(count), 24);
    rec.writeBigUInt64LE(BigInt(count), 32);
    rec.writeBigUInt64LE(BigInt(cdSize), 40);
    rec.writeBigUInt64LE(BigInt(cdOffset), 48);
    put(rec);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(recOffset), 8);
    loc.writeUInt32LE(1, 16);
    put(loc);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : count, 8);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : count, 10);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : cdSize, 12);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : cdOffset, 16);
  put(eocd);
  fs.closeSync(fd);
}

/** Writes a torch.save-style checkpoint {"model": state_dict} of float32 tensors. */
export function writeTorchCheckpoint(
  file: string,
  tensors: { key: string; shape: number[]; data: () => Float32Array }[],
  opts: ZipWriteOptions & { pickle?: Buffer; flat?: boolean } = {},
): void {
  const name = 'archive';
  function* entries(): Generator<[string, Uint8Array]> {
    yield [`${name}/data.pkl`, opts.pickle ?? statePickle(tensors, opts.flat)];
    for (let i = 0; i < tensors.length; i++) {
      const d = tensors[i].data();
      yield [`${name}/data/${i}`, new Uint8Array(d.buffer, d.byteOffset, d.byteLength)];
    }
    yield [`${name}/version`, Buffer.from('3\n')];
    yield [`${name}/byteorder`, Buffer.from('little')];
  }
  writeZip(file, entries(), opts);
}

/** A full-size checkpoint of a real model's keys and shapes, every tensor from the weight formula. */
export function writeFormulaCheckpoint(file: string, model = 'sam2.1_hiera_tiny'): void {
  // SAM 1's official files are a flat state dict (no "model" wrapper)
  const flat = model.startsWith('sam_vit_');
  writeTorchCheckpoint(
    file,
    loadManifest(model).map(([key, shape]) => ({ key, shape, data: () => formulaWeight(key, shape) })),
    { flat },
  );
}
