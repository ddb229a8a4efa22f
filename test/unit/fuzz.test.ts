/**
 * Corrupt files: seeded mutations of the fixture checkpoints, of a safetensors file and of a
 * ported folder. Every outcome must be a Sam2Error or an intact read, each within a second.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { fixturePath, formulaWeight } from '../helpers';
import { Sam2Error } from '../../src/errors';
import { SafetensorsCheckpoint, TorchCheckpoint, type Checkpoint } from '../../src/io/torch_checkpoint';
import { bufferSource } from '../../src/io/zip';
import { readPortedWeights } from '../../src/io/ported';
import { makeConfig } from '../../src/config';

/** mulberry32: a small seeded PRNG, so a failure can be replayed. */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One mutation: random bytes, a filled run, or a truncation; `lo..hi` bounds where it lands. */
function mutate(buf: Buffer, rand: () => number, lo = 0, hi = buf.length): { out: Buffer; what: string } {
  const out = Buffer.from(buf);
  const at = () => lo + Math.floor(rand() * (hi - lo));
  const kind = Math.floor(rand() * 3);
  if (kind === 0) {
    const n = 1 + Math.floor(rand() * 8);
    const where: number[] = [];
    for (let i = 0; i < n; i++) {
      const p = at();
      out[p] = Math.floor(rand() * 256);
      where.push(p);
    }
    return { out, what: `random bytes at ${where}` };
  }
  if (kind === 1) {
    const p = at();
    const n = 1 + Math.floor(rand() * 64);
    const v = [0, 0xff, Math.floor(rand() * 256)][Math.floor(rand() * 3)];
    out.fill(v, p, Math.min(out.length, p + n));
    return { out, what: `run of ${n} x 0x${v.toString(16)} at ${p}` };
  }
  const n = at();
  return { out: out.subarray(0, n), what: `truncated to ${n} bytes` };
}

function readAll(ckpt: Checkpoint): void {
  try {
    for (const k of ckpt.keys()) {
      ckpt.info(k);
      ckpt.values(k);
    }
  } finally {
    ckpt.close();
  }
}

/** Runs `fn`; it must succeed or throw a Sam2Error, within a second. */
async function outcome(what: string, fn: () => unknown): Promise<'ok' | 'error'> {
  const t0 = Date.now();
  let r: 'ok' | 'error' = 'ok';
  try {
    await fn();
  } catch (e) {
    if (!(e instanceof Sam2Error)) expect.fail(`${what}: raw ${(e as Error)?.name}: ${(e as Error)?.message}`);
    r = 'error';
  }
  expect(Date.now() - t0, `${what} took too long`).to.be.below(1000);
  return r;
}

function safetensorsBytes(): Buffer {
  const a = Buffer.from(new Float32Array([1, 2, 3, 4, 5, 6]).buffer);
  const b = Buffer.from(new Uint16Array([0x3c00, 0x4000]).buffer);
  const header = Buffer.from(
    JSON.stringify({
      __metadata__: { format: 'pt' },
      a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
      b: { dtype: 'F16', shape: [2], data_offsets: [24, 28] },
    }),
  );
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([len, header, a, b]);
}

describe('corrupt files: seeded fuzzing of checkpoints, safetensors and ported folders', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sam2-fuzz-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('a flipped byte inside a tensor fails the zip CRC-32 check, naming the tensor', () => {
    const file = fs.readFileSync(fixturePath('ckpt/tiny_heads_formula.pt'));
    const key = 'sam_mask_decoder.iou_token.weight';
    const at = file.indexOf(Buffer.from(formulaWeight(key, [1, 256]).buffer));
    expect(at).to.be.greaterThan(0);
    const bad = Buffer.from(file);
    bad[at + 17] ^= 0x04;
    const ckpt = new TorchCheckpoint('flipped.pt', bufferSource(bad));
    expect(() => ckpt.values('sam_prompt_encoder.point_embeddings.0.weight')).to.not.throw();
    expect(() => ckpt.float32(key)).to.throw(
      Sam2Error,
      new RegExp(`tensor "${key.replace(/\./g, '\\.')}" fails its CRC-32 check`),
    );
    ckpt.close();
  });

  for (const [name, runs] of [
    ['features.pt', 150],
    ['tiny_heads_formula.pt', 80],
  ] as const) {
    it(`${name}: ${runs} seeded mutations are each a Sam2Error or an intact read (< 1 s)`, async () => {
      const orig = fs.readFileSync(fixturePath(`ckpt/${name}`));
      const rand = rng(name.length * 7919);
      const counts = { ok: 0, error: 0 };
      for (let i = 0; i < runs; i++) {
        // half of the mutations aim at the last 4 KiB: the pickle and the zip directories
        const { out, what } = i % 2 ? mutate(orig, rand) : mutate(orig, rand, Math.max(0, orig.length - 4096));
        counts[await outcome(`${name} #${i} (${what})`, () => readAll(new TorchCheckpoint(name, bufferSource(out))))]++;
      }
      console.log(`      ${name}: ${counts.error} errors, ${counts.ok} intact reads`);
    });
  }

  it('safetensors: 150 mutations (mostly of the header) are each a Sam2Error or an intact read', async () => {
    const orig = safetensorsBytes();
    const headerEnd = 8 + Number(orig.readBigUInt64LE(0));
    const rand = rng(42);
    for (let i = 0; i < 150; i++) {
      const { out, what } = i % 3 ? mutate(orig, rand, 0, headerEnd) : mutate(orig, rand);
      await outcome(`safetensors #${i} (${what})`, () =>
        readAll(new SafetensorsCheckpoint('m.safetensors', bufferSource(out))),
      );
    }
    // well-formed JSON that is not a safetensors header
    for (const header of [
      'null',
      '[1,2]',
      '{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}',
      '{"a":{"dtype":"F32","shape":[1e12],"data_offsets":[0,4]}}',
      '{"a":5}',
    ]) {
      const h = Buffer.from(header);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(h.length));
      const r = await outcome(header, () =>
        readAll(new SafetensorsCheckpoint('m.safetensors', bufferSource(Buffer.concat([len, h, Buffer.alloc(4)])))),
      );
      expect(r, header).to.equal('error');
    }
  });

  it('ported folders: 100 mutations of model.json and shards are each a Sam2Error or an intact read, leaking nothing', async () => {
    const dir = path.join(tmp, 'ported');
    fs.mkdirSync(dir);
    const json = JSON.stringify({
      format: 'sam2-tfjs-weights',
      version: 1,
      generatedBy: 'test',
      source: 'x.pt',
      sam2Config: makeConfig('sam2.1', 'tiny', 128),
      weightsManifest: [
        {
          paths: ['group1-shard1.bin'],
          weights: [
            { name: 'a', shape: [2, 3], dtype: 'float32' },
            { name: 'b', shape: [4], dtype: 'float32', quantization: { dtype: 'float16', original_dtype: 'float32' } },
          ],
        },
      ],
    });
    const shard = Buffer.concat([
      Buffer.from(new Float32Array([1, 2, 3, 4, 5, 6]).buffer),
      Buffer.from(new Uint16Array([0x3c00, 0x4000, 0, 0x3c00]).buffer),
    ]);
    const rand = rng(7);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 100; i++) {
      const target = i % 4 ? 'json' : 'shard';
      const { out, what } = mutate(target === 'json' ? Buffer.from(json) : shard, rand);
      fs.writeFileSync(path.join(dir, 'model.json'), target === 'json' ? out : json);
      fs.writeFileSync(path.join(dir, 'group1-shard1.bin'), target === 'shard' ? out : shard);
      await outcome(`${target} #${i} (${what})`, async () => (await readPortedWeights(dir)).weights.dispose());
    }
    expect(tf.memory().numTensors).to.equal(before);
  });
});
