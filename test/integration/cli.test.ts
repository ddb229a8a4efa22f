import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Jimp } from 'jimp';
import { fixturePath } from '../helpers';
import { writeFormulaCheckpoint } from '../helpers/torch_writer';

const cli = path.join(__dirname, '..', '..', 'src', 'cli', 'main.ts');

function run(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], {
    encoding: 'utf8',
    env: { ...process.env, SAM2_TFJS_BACKEND: 'wasm' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('command line (sam2-tfjs)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sam2-cli-'));
  const weights = path.join(tmp, 'weights');
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('prints help, and help for every command', () => {
    const h = run('--help');
    expect(h.code).to.equal(0);
    for (const c of ['info', 'download', 'port', 'segment', 'auto', 'track']) {
      expect(h.out).to.contain(`sam2-tfjs ${c}`);
      const r = run(c, '--help');
      expect(r.code, c).to.equal(0);
      expect(r.out).to.match(new RegExp(`^sam2-tfjs ${c}`));
    }
    expect(run().code).to.equal(2);
  });

  it('fails with a one-line error and a non-zero exit on bad input', () => {
    const unknown = run('frobnicate');
    expect(unknown.code).to.equal(2);
    expect(unknown.err.split('\n')[0]).to.equal('sam2-tfjs: unknown command "frobnicate"');
    const noModel = run('segment', fixturePath('images/truck.png'), '--point', '1,2', '--out', path.join(tmp, 'm.png'));
    expect(noModel.code).to.equal(2);
    expect(noModel.err.split('\n')[0]).to.match(
      /--model is required: a folder written by `sam2-tfjs port`, or a model name \(sam2_hiera_tiny, .*sam2\.1_hiera_large, sam_vit_b, sam_vit_l, sam_vit_h\)$/,
    );
    const badPoint = run('segment', 'x.png', '--model', weights, '--point', '1;2', '--out', 'm.png');
    expect(badPoint.code).to.equal(2);
    expect(badPoint.err.split('\n')[0]).to.match(/--point/);
    const badFile = run('port', path.join(tmp, 'missing.pt'));
    expect(badFile.code).to.equal(1);
    expect(badFile.err.trim()).to.match(/^sam2-tfjs port: Checkpoint file not found: /);
    expect(badFile.err.trim().split('\n')).to.have.length(1);
    const badBackend = run('info', '--backend', 'tpu');
    expect(badBackend.code).to.equal(1);
    expect(badBackend.err.trim()).to.match(
      /^sam2-tfjs info: Unknown backend "tpu"\. Use one of: auto, tensorflow, node-gpu, node, wasm, cpu, webgpu, webgl/,
    );
    const noWeights = run(
      'auto',
      fixturePath('amg_truck', 'input.png'),
      '--model',
      path.join(tmp, 'none'),
      '--out',
      path.join(tmp, 'x.json'),
    );
    expect(noWeights.code).to.equal(1);
    expect(noWeights.err.trim()).to.match(
      /^sam2-tfjs auto: Cannot read .*model\.json\. Port a checkpoint first: npx sam2-tfjs port/,
    );
    const badSize = run(
      'segment',
      'x.png',
      '--model',
      weights,
      '--point',
      '1,2',
      '--out',
      'm.png',
      '--image-size',
      'big',
    );
    expect(badSize.code).to.equal(2);
    expect(badSize.err.split('\n')[0]).to.match(/--image-size must be a number, got "big"/);
    // an .mp4 with no ffmpeg on PATH (PATH holds only node's folder here)
    const noFfmpeg = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        cli,
        'track',
        path.join(tmp, 'clip.mp4'),
        '--model',
        weights,
        '--prompt',
        '0:1:5,5',
        '--out',
        path.join(tmp, 'trk'),
      ],
      {
        encoding: 'utf8',
        env: { ...process.env, PATH: path.dirname(process.execPath) },
      },
    );
    expect(noFfmpeg.status).to.equal(2);
    expect(noFfmpeg.stderr.split('\n')[0]).to.match(
      /an \.mp4 input needs ffmpeg on PATH \(or pass a directory of frames/,
    );
  });

  it('the built bin (dist/cjs/cli/main.js, built by npm test) has a node shebang and runs', function () {
    const bin = path.join(__dirname, '..', '..', 'dist', 'cjs', 'cli', 'main.js');
    if (!fs.existsSync(bin)) {
      console.log('      (no build: run `npm run build` first)');
      this.skip();
    }
    expect(fs.readFileSync(bin, 'utf8').split('\n')[0]).to.equal('#!/usr/bin/env node');
    const r = spawnSync(process.execPath, [bin, 'port', '--help'], { encoding: 'utf8' });
    expect(r.status).to.equal(0);
    expect(r.stdout).to.match(/^sam2-tfjs port/);
  });

  it('info reports the backend and whether tfjs-node(-gpu) is installed', () => {
    const r = run('info');
    expect(r.code).to.equal(0);
    expect(r.out).to.match(/backend: wasm \(wasm\)/);
    expect(r.out).to.match(/wasm threads: \d+/);
    expect(r.out).to.match(/tfjs-node-gpu \(CUDA\): (not )?installed/);
  });

  it('port, then segment (mask PNG, overlay, JSON scores), auto (COCO RLE JSON) and track (per-frame PNGs)', async () => {
    const ckpt = path.join(tmp, 'sam2.1_hiera_tiny.pt');
    writeFormulaCheckpoint(ckpt);
    const p = run('port', ckpt, '--out', weights);
    expect(p.code, p.err).to.equal(0);
    expect(p.out).to.match(/ported sam2\.1_hiera_tiny: 471 tensors/);

    const image = fixturePath('amg_truck', 'input.png');
    const mask = path.join(tmp, 'mask.png');
    const overlay = path.join(tmp, 'overlay.png');
    const s = run(
      'segment',
      image,
      '--model',
      weights,
      '--image-size',
      '256',
      '--point',
      '200,150',
      '--point',
      '50,50,0',
      '--out',
      mask,
      '--overlay',
      overlay,
      '--json',
    );
    expect(s.code, s.err).to.equal(0);
    const res = JSON.parse(s.out);
    expect(res.masks).to.deep.equal([mask]);
    expect(res.scores).to.have.length(1);
    const m = await Jimp.read(mask);
    expect([m.bitmap.width, m.bitmap.height]).to.deep.equal([450, 300]);
    const o = await Jimp.read(overlay);
    expect(o.bitmap.width).to.equal(450);
    const multi = run(
      'segment',
      image,
      '--model',
      weights,
      '--image-size',
      '256',
      '--box',
      '100,80,300,220',
      '--multimask',
      '--out',
      path.join(tmp, 'multi.png'),
    );
    expect(multi.code, multi.err).to.equal(0);
    const lines = multi.out
      .trim()
      .split('\n')
      .map((l) => l.split('\tscore '));
    expect(lines.map((l) => path.basename(l[0]))).to.deep.equal(['multi-1.png', 'multi-2.png', 'multi-3.png']);
    const scores = lines.map((l) => Number(l[1]));
    expect([...scores].sort((x, y) => y - x)).to.deep.equal(scores); // best first
    for (const [f] of lines) expect(fs.existsSync(f), f).to.equal(true);

    const out = path.join(tmp, 'masks.json');
    const a = run(
      'auto',
      image,
      '--model',
      weights,
      '--image-size',
      '256',
      '--points-per-side',
      '4',
      '--pred-iou-thresh',
      '0',
      '--stability-score-thresh',
      '0',
      '--out',
      out,
      '--overlay',
      path.join(tmp, 'auto.png'),
    );
    expect(a.code, a.err).to.equal(0);
    const anns = JSON.parse(fs.readFileSync(out, 'utf8'));
    expect(anns.length).to.be.greaterThan(0);
    expect(anns[0].segmentation.size).to.deep.equal([300, 450]);
    expect(anns[0].segmentation.counts).to.be.a('string');

    // track: a directory of numbered frames, one click, per-frame mask PNGs and overlays
    const framesDir = path.join(tmp, 'frames');
    fs.mkdirSync(framesDir);
    for (let i = 0; i < 3; i++) {
      const img = new Jimp({ width: 40, height: 30, color: 0x202020ff });
      for (let y = 10; y < 20; y++) for (let x = 5 + 5 * i; x < 15 + 5 * i; x++) img.setPixelColor(0xe0e0e0ff, x, y);
      fs.writeFileSync(path.join(framesDir, `0000${i}.png`), await img.getBuffer('image/png'));
    }
    const trackOut = path.join(tmp, 'track');
    const t = run(
      'track',
      framesDir,
      '--model',
      weights,
      '--image-size',
      '128',
      '--prompt',
      '0:1:10,15',
      '--out',
      trackOut,
    );
    expect(t.code, t.err).to.equal(0);
    expect(t.out).to.match(/3 frames x 1 objects/);
    for (const f of ['00000_obj1.png', '00002_obj1.png', '00002_overlay.png'])
      expect(fs.existsSync(path.join(trackOut, f)), f).to.equal(true);
    const bad = run('track', framesDir, '--model', weights, '--prompt', '0:1', '--out', trackOut);
    expect(bad.code).to.equal(2);
    expect(bad.err.split('\n')[0]).to.match(/--prompt takes frame:obj:x,y/);
  });
});
