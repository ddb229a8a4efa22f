import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { expectNoLeak, fixturePath, formulaWeight } from '../helpers';
import { loadManifest } from '../../src/testing/manifest';
import { checkKeys, portCheckpoint, type PortedModelJson } from '../../src/io/port';
import { readPortedWeights } from '../../src/io/ported';
import { tfShape, toTfLayout } from '../../src/io/layout';
import { checkpointUrl } from '../../src/io/download';
import { makeSam1Config } from '../../src/config_sam1';
import { Sam1Model } from '../../src/model/sam1/sam1';
import { loadSam2 } from '../../src/load';
import type { Checkpoint } from '../../src/io/torch_checkpoint';
import { Sam2Error } from '../../src/errors';
import { writeFormulaCheckpoint } from '../helpers/torch_writer';

describe('SAM 1: porting the official checkpoints', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sam1-port-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('ports a full-size ViT-B checkpoint (flat state dict): detected, every tensor exact, loads with loadSam2', async () => {
    const file = path.join(tmp, 'sam_vit_b_01ec64.pth');
    const manifest = loadManifest('sam_vit_b');
    writeFormulaCheckpoint(file, 'sam_vit_b');
    const out = path.join(tmp, 'vit_b');
    const t0 = Date.now();
    const r = portCheckpoint(file, out);
    console.log(`      ported ${r.tensors} tensors, ${(r.bytes / 2 ** 20).toFixed(1)} MiB in ${Date.now() - t0} ms`);
    expect(r.config).to.deep.equal(makeSam1Config('vit_b'));
    expect(r.tensors).to.equal(manifest.length);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8')) as PortedModelJson;
    expect(json.sam2Config).to.deep.include({ kind: 'sam1', name: 'sam_vit_b' });
    const { config, weights } = await readPortedWeights(out);
    for (const [key, shape] of manifest) {
      const t = weights.get(key);
      expect(t.shape, key).to.deep.equal(tfShape(key, shape));
      const want = toTfLayout(key, shape, formulaWeight(key, shape));
      expect(Buffer.from((t.dataSync() as Float32Array).buffer).equals(Buffer.from(want.buffer)), key).to.equal(true);
    }
    // the embedding tables keep their shape (SAM 1 names them without the sam_ prefix)
    expect(weights.get('prompt_encoder.point_embeddings.0.weight').shape).to.deep.equal([1, 256]);
    expect(weights.get('mask_decoder.output_upscaling.0.weight').shape).to.deep.equal([2, 2, 64, 256]);
    await expectNoLeak('build + dispose', () =>
      new Sam1Model(config as ReturnType<typeof makeSam1Config>, weights).dispose(),
    );
    weights.dispose();
    const model = await loadSam2(out, { imageSize: 128 });
    expect(model.kind).to.equal('sam1');
    expect(model.config.imageSize).to.equal(128);
    model.dispose();

    // the CLI's segment and auto run on the ported SAM 1 folder (small input size); track refuses it
    const cli = (...args: string[]) =>
      spawnSync(
        process.execPath,
        ['--import', 'tsx', path.join(__dirname, '..', '..', 'src', 'cli', 'main.ts'), ...args],
        {
          encoding: 'utf8',
          env: { ...process.env, SAM2_TFJS_BACKEND: 'wasm' },
        },
      );
    const img = fixturePath('amg_sam1_truck', 'input.png');
    const seg = cli(
      'segment',
      img,
      '--model',
      out,
      '--image-size',
      '64',
      '--point',
      '200,150',
      '--out',
      path.join(tmp, 'm.png'),
      '--json',
    );
    expect(seg.status, seg.stderr).to.equal(0);
    expect(JSON.parse(seg.stdout).width).to.equal(450);
    const auto = cli(
      'auto',
      img,
      '--model',
      out,
      '--image-size',
      '64',
      '--points-per-side',
      '2',
      '--pred-iou-thresh',
      '0',
      '--stability-score-thresh',
      '0',
      '--min-mask-region-area',
      '20',
      '--out',
      path.join(tmp, 'a.json'),
    );
    expect(auto.status, auto.stderr).to.equal(0);
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'a.json'), 'utf8'))).to.be.an('array');
    const track = cli(
      'track',
      path.join(tmp),
      '--model',
      out,
      '--image-size',
      '64',
      '--prompt',
      '0:1:10,10',
      '--out',
      path.join(tmp, 'trk'),
    );
    expect(track.status).to.not.equal(0);
    expect(track.stderr).to.match(/SAM 1, which cannot track videos/);
  });

  for (const name of ['sam_vit_l', 'sam_vit_h']) {
    it(`${name}: the official key list passes the check, a missing or mis-shaped key is named`, () => {
      const manifest = loadManifest(name);
      const ck = (m: [string, number[]][]): Checkpoint => {
        const map = new Map(m);
        return {
          path: name,
          keys: () => [...map.keys()],
          info: (k) => ({ dtype: 'float32', shape: map.get(k)! }),
          values: () => new Float64Array(0),
          float32: () => new Float32Array(0),
          close: () => undefined,
        };
      };
      const config = makeSam1Config(name.slice(4) as 'vit_l' | 'vit_h');
      checkKeys(ck(manifest), config);
      const broken = manifest
        .filter(([k]) => k !== 'mask_decoder.iou_token.weight')
        .map(([k, s]) => [k, k === 'image_encoder.pos_embed' ? [1, 32, 32, s[3]] : s] as [string, number[]]);
      expect(() => checkKeys(ck(broken), config)).to.throw(
        Sam2Error,
        /missing keys: mask_decoder.iou_token.weight.*wrong shapes: image_encoder.pos_embed/,
      );
    });
  }

  it('knows the official download names and URLs', () => {
    expect(checkpointUrl('sam_vit_b')).to.equal('https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth');
    expect(checkpointUrl('sam_vit_l')).to.equal('https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth');
    expect(checkpointUrl('sam_vit_h', 'http://mirror/x/')).to.equal('http://mirror/x/sam_vit_h_4b8939.pth');
  });
});
