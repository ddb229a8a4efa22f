import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { expectNoLeak, formulaWeight } from '../helpers';
import { loadManifest, sam20Manifest } from '../../src/testing/manifest';
import { checkKeys, floatToHalf, portCheckpoint, SHARD_BYTES, type PortedModelJson } from '../../src/io/port';
import { readPortedWeights } from '../../src/io/ported';
import { halfToFloat, type Checkpoint } from '../../src/io/torch_checkpoint';
import { tfShape, toTfLayout } from '../../src/io/layout';
import { detectConfig, makeConfig, type Sam2Config } from '../../src/config';
import { Sam2Model } from '../../src/model/sam2';
import { Sam2Error } from '../../src/errors';
import { writeFormulaCheckpoint } from '../helpers/torch_writer';

/** A key/shape-only checkpoint, for manifest checks without writing files. */
function manifestCheckpoint(manifest: [string, number[]][]): Checkpoint {
  const m = new Map(manifest);
  return {
    path: 'manifest',
    keys: () => [...m.keys()],
    info: (k) => ({ dtype: 'float32', shape: m.get(k)! }),
    values: () => new Float64Array(0),
    float32: () => new Float32Array(0),
    close: () => undefined,
  };
}

describe('porting checkpoints to TF.js weights', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sam2-port-'));
  const ckptFile = path.join(tmp, 'sam2.1_hiera_tiny.pt');
  const manifest = loadManifest('sam2.1_hiera_tiny');
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  before(() => {
    // a full-size SAM 2.1 Hiera-T checkpoint in the real layout, with formula weights
    writeFormulaCheckpoint(ckptFile);
  });

  it('ports a full-size Hiera-T checkpoint: variant detected, tensors equal the formula values in TF layout', async () => {
    const out = path.join(tmp, 'tiny');
    const t0 = Date.now();
    const r = portCheckpoint(ckptFile, out);
    console.log(
      `      ported ${r.tensors} tensors, ${(r.bytes / 2 ** 20).toFixed(1)} MiB, ${r.shards} shards in ${Date.now() - t0} ms`,
    );
    expect(r.config.name).to.equal('sam2.1_hiera_tiny');
    expect(r.tensors).to.equal(manifest.length);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8')) as PortedModelJson;
    expect((json.sam2Config as Sam2Config).trunk.stages).to.deep.equal([1, 2, 7, 2]);
    for (const p of json.weightsManifest[0].paths)
      expect(fs.statSync(path.join(out, p)).size).to.be.at.most(SHARD_BYTES);
    const { config, weights } = await readPortedWeights(out);
    expect(config.name).to.equal('sam2.1_hiera_tiny');
    for (const [key, shape] of manifest) {
      const t = weights.get(key);
      expect(t.shape, key).to.deep.equal(tfShape(key, shape));
      const want = toTfLayout(key, shape, formulaWeight(key, shape));
      expect(Buffer.from((t.dataSync() as Float32Array).buffer).equals(Buffer.from(want.buffer)), key).to.equal(true);
    }
    // the ported folder loads into the model (every key consumed)
    await expectNoLeak('image model build + dispose', () => new Sam2Model(config as Sam2Config, weights).dispose());
    weights.dispose();
  });

  it('writes float16 shards that read back within half precision (half the bytes)', async () => {
    const out = path.join(tmp, 'tiny16');
    const r = portCheckpoint(ckptFile, out, { float16: true });
    const full = portCheckpoint(ckptFile, path.join(tmp, 'tiny32b'));
    expect(r.bytes * 2).to.equal(full.bytes);
    const { weights } = await readPortedWeights(out);
    const key = 'image_encoder.trunk.blocks.3.attn.qkv.weight';
    const shape = manifest.find(([k]) => k === key)![1];
    const want = toTfLayout(key, shape, formulaWeight(key, shape));
    const got = weights.get(key).dataSync();
    for (let i = 0; i < want.length; i += 97) expect(got[i]).to.equal(halfToFloat(floatToHalf(want[i])));
    weights.dispose();
  });

  it('converts float32 to half with round-to-nearest-even, subnormals and overflow', () => {
    expect(floatToHalf(1)).to.equal(0x3c00);
    expect(floatToHalf(-2)).to.equal(0xc000);
    expect(floatToHalf(65504)).to.equal(0x7bff);
    expect(floatToHalf(70000)).to.equal(0x7c00);
    expect(floatToHalf(2 ** -24)).to.equal(1);
    expect(floatToHalf(1 + 2 ** -11)).to.equal(0x3c00); // tie -> even
    expect(floatToHalf(1 + 3 * 2 ** -11)).to.equal(0x3c02);
  });

  it('recognises all four sizes and both generations, and passes the manifest check for each', () => {
    for (const size of ['tiny', 'small', 'base_plus', 'large'] as const) {
      const m21 = loadManifest(`sam2.1_hiera_${size}`);
      const c21 = detectConfig(new Map(m21));
      expect(c21.name).to.equal(`sam2.1_hiera_${size}`);
      checkKeys(manifestCheckpoint(m21), c21);
      const m20 = sam20Manifest(size);
      const c20 = detectConfig(new Map(m20));
      expect(c20.name).to.equal(`sam2_hiera_${size}`);
      checkKeys(manifestCheckpoint(m20), c20);
    }
  });

  it('fails on missing, unexpected or mis-shaped keys, naming them', () => {
    const config = makeConfig('sam2.1', 'tiny');
    const bad = manifest.filter(([k]) => k !== 'sam_mask_decoder.iou_token.weight').concat([['extra.thing', [3]]]);
    bad[0] = [bad[0][0], [1, 2, 3]];
    expect(() => checkKeys(manifestCheckpoint(bad), config)).to.throw(
      Sam2Error,
      /missing keys: sam_mask_decoder\.iou_token\.weight; unexpected keys: extra\.thing; wrong shapes: maskmem_tpos_enc \[1,2,3\] \(expected \[7,1,1,64\]\)/,
    );
    expect(() => detectConfig(new Map([['x', [1]]]))).to.throw(Sam2Error, /Not a SAM 2 checkpoint/);
  });

  it('ports .safetensors input the same way', async () => {
    const header: Record<string, unknown> = {};
    let off = 0;
    for (const [k, s] of manifest) {
      const n = s.reduce((a, b) => a * b, 1) * 4;
      header[k] = { dtype: 'F32', shape: s, data_offsets: [off, off + n] };
      off += n;
    }
    const h = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    const file = path.join(tmp, 'tiny.safetensors');
    const fd = fs.openSync(file, 'w');
    fs.writeSync(fd, Buffer.concat([len, h]));
    for (const [k, s] of manifest) fs.writeSync(fd, new Uint8Array(formulaWeight(k, s).buffer));
    fs.closeSync(fd);
    const r = portCheckpoint(file, path.join(tmp, 'st'));
    expect(r.config.name).to.equal('sam2.1_hiera_tiny');
    const { weights } = await readPortedWeights(path.join(tmp, 'st'));
    for (const [key, shape] of manifest.filter((_, i) => i % 25 === 0)) {
      const want = toTfLayout(key, shape, formulaWeight(key, shape));
      expect(
        Buffer.from((weights.get(key).dataSync() as Float32Array).buffer).equals(Buffer.from(want.buffer)),
        key,
      ).to.equal(true);
    }
    weights.dispose();
  });

  it('scripts/port_weights.ts ports from the command line and reports bad input', () => {
    const script = path.join(__dirname, '..', '..', 'scripts', 'port_weights.ts');
    const out = path.join(tmp, 'cli');
    const stdout = execFileSync(process.execPath, ['--import', 'tsx', script, '--checkpoint', ckptFile, '--out', out], {
      encoding: 'utf8',
    });
    expect(stdout).to.match(/ported sam2\.1_hiera_tiny: 471 tensors/);
    let failed = false;
    try {
      execFileSync(
        process.execPath,
        ['--import', 'tsx', script, '--checkpoint', path.join(tmp, 'missing.pt'), '--out', out],
        { stdio: 'pipe' },
      );
    } catch (e) {
      failed = true;
      expect(String((e as { stderr: Buffer }).stderr)).to.match(/Checkpoint file not found/);
    }
    expect(failed).to.equal(true);
  });

  it('readPortedWeights explains a missing or corrupt folder', async () => {
    for (const [dir, re] of [[path.join(tmp, 'nothing'), /Port a checkpoint first/]] as const) {
      try {
        await readPortedWeights(dir);
        expect.fail('should throw');
      } catch (e) {
        expect(e).to.be.instanceOf(Sam2Error);
        expect((e as Error).message).to.match(re);
      }
    }
    const broken = path.join(tmp, 'broken');
    fs.cpSync(path.join(tmp, 'tiny'), broken, { recursive: true });
    fs.truncateSync(path.join(broken, 'group1-shard1.bin'), 100);
    try {
      await readPortedWeights(broken);
      expect.fail('should throw');
    } catch (e) {
      expect((e as Error).message).to.match(/incomplete or corrupt/);
    }
    expect(tf.memory().numTensors).to.be.a('number');
  });
});
