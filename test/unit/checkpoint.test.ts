import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { expectSam2Error, fixturePath, formulaWeight } from '../helpers';
import { readCheckpoint } from '../../src/io/torch_checkpoint';
import { statePickle, writeTorchCheckpoint } from '../helpers/torch_writer';

describe('checkpoint reading (torch zip + pickle, safetensors)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sam2-ckpt-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('reads every storage case of features.pt exactly as features.expected.json says', () => {
    const expected = JSON.parse(fs.readFileSync(fixturePath('ckpt/features.expected.json'), 'utf8')) as Record<
      string,
      { dtype: string; shape: number[]; values: number[] }
    >;
    const ckpt = readCheckpoint(fixturePath('ckpt/features.pt'));
    expect(ckpt.keys().sort()).to.deep.equal(Object.keys(expected).sort());
    for (const [key, exp] of Object.entries(expected)) {
      const info = ckpt.info(key);
      expect(info.dtype, key).to.equal(exp.dtype);
      expect(info.shape, key).to.deep.equal(exp.shape);
      // the expected lists are the tensors' values as float32 (e.g. 2^31-1 -> 2^31, 1e-300 -> 0)
      expect(Array.from(ckpt.float32(key)), key).to.deep.equal(exp.values);
    }
    // exact wide values survive in the float64 view
    expect(Array.from(ckpt.values('i32'))).to.deep.equal([-5, 2147483647]);
    expect(Array.from(ckpt.values('i64'))).to.deep.equal([-1099511627776, 7]);
    ckpt.close();
  });

  it('reads tiny_heads_formula.pt (real key layout) back to the formula values', () => {
    const ckpt = readCheckpoint(fixturePath('ckpt/tiny_heads_formula.pt'));
    const keys = ckpt.keys();
    expect(keys.length).to.be.greaterThan(100);
    expect(keys.every((k) => k.startsWith('sam_prompt_encoder.') || k.startsWith('sam_mask_decoder.'))).to.equal(true);
    for (const key of keys) {
      const { shape } = ckpt.info(key);
      expect(Buffer.from(ckpt.float32(key).buffer).equals(Buffer.from(formulaWeight(key, shape).buffer)), key).to.equal(
        true,
      );
    }
    ckpt.close();
  });

  it('rejects a truncated checkpoint, naming the problem', async () => {
    await expectSam2Error(() => readCheckpoint(fixturePath('ckpt/truncated.pt')), 'CHECKPOINT', /truncated or corrupt/);
  });

  it('rejects the legacy (pre-1.6) torch.save format with what to do', async () => {
    await expectSam2Error(
      () => readCheckpoint(fixturePath('ckpt/legacy_format.pt')),
      'CHECKPOINT',
      /legacy \(pre-1\.6\).*Re-save/,
    );
  });

  it('refuses pickles that reference anything but tensor and container types (nothing runs)', async () => {
    const evil = Buffer.concat([
      Buffer.from([0x80, 2]),
      Buffer.from('cos\nsystem\n', 'latin1'),
      Buffer.from([0x58, 2, 0, 0, 0]),
      Buffer.from('ls'),
      Buffer.from([0x85, 0x52, 0x2e]),
    ]);
    const file = path.join(tmp, 'evil.pt');
    writeTorchCheckpoint(file, [], { pickle: evil });
    await expectSam2Error(() => readCheckpoint(file), 'UNSAFE_PICKLE', /"os\.system".*refusing/);
  });

  it('reads zip64 archives with data descriptors', () => {
    const file = path.join(tmp, 'z64.pt');
    const t = [{ key: 'a.weight', shape: [3, 2], data: () => Float32Array.from([1, 2, 3, 4, 5, 6]) }];
    writeTorchCheckpoint(file, t, { zip64: true });
    const ckpt = readCheckpoint(file);
    expect(Array.from(ckpt.float32('a.weight'))).to.deep.equal([1, 2, 3, 4, 5, 6]);
    ckpt.close();
    // the same pickle parses identically without zip64
    expect(statePickle(t).length).to.be.greaterThan(0);
  });

  it('reads .safetensors files and rejects corrupt ones', async () => {
    const header = JSON.stringify({
      __metadata__: { format: 'pt' },
      'x.bias': { dtype: 'F16', shape: [2], data_offsets: [0, 4] },
      'y.weight': { dtype: 'F32', shape: [1, 2], data_offsets: [4, 12] },
    });
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    const data = Buffer.alloc(12);
    data.writeUInt16LE(0x3c00, 0); // 1.0 in half
    data.writeUInt16LE(0xc000, 2); // -2.0
    data.writeFloatLE(0.5, 4);
    data.writeFloatLE(-7, 8);
    const file = path.join(tmp, 'a.safetensors');
    fs.writeFileSync(file, Buffer.concat([len, Buffer.from(header), data]));
    const ckpt = readCheckpoint(file);
    expect(ckpt.keys().sort()).to.deep.equal(['x.bias', 'y.weight']);
    expect(Array.from(ckpt.float32('x.bias'))).to.deep.equal([1, -2]);
    expect(Array.from(ckpt.float32('y.weight'))).to.deep.equal([0.5, -7]);
    ckpt.close();
    const bad = path.join(tmp, 'bad.safetensors');
    fs.writeFileSync(bad, Buffer.concat([len, Buffer.from(header), data.subarray(0, 6)]));
    const c2 = readCheckpoint(bad);
    await expectSam2Error(() => c2.float32('y.weight'), 'CHECKPOINT', /truncated or corrupt/);
    c2.close();
  });

  it('names a missing file', async () => {
    await expectSam2Error(() => readCheckpoint(path.join(tmp, 'nope.pt')), 'CHECKPOINT', /not found/);
  });
});
