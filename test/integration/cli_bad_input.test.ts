/**
 * The README's promise, walked through: every class of bad command-line input exits non-zero
 * with exactly one line on stderr (no stack trace), before any slow work; outputs in missing
 * folders are written; an empty `auto` result says which thresholds dropped the candidates.
 */
import { expect } from 'chai';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Jimp } from 'jimp';
import { fixturePath } from '../helpers';
import { writeFormulaCheckpoint } from '../helpers/torch_writer';
import { portCheckpoint } from '../../src/io/port';

const cli = path.join(__dirname, '..', '..', 'src', 'cli', 'main.ts');

function run(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], {
    env: { ...process.env, SAM2_TFJS_BACKEND: 'wasm', ...env },
  });
  const r = { out: '', err: '', code: -1 };
  child.stdout.on('data', (d) => (r.out += d));
  child.stderr.on('data', (d) => (r.err += d));
  return new Promise<typeof r>((resolve) => child.on('close', (code) => resolve({ ...r, code: code ?? -1 })));
}

/** Runs the cases two at a time (the machine has two cores). */
async function pool<T, R>(items: T[], fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all([worker(), worker()]);
  return out;
}

describe('command line: every class of bad input gives one line and a non-zero exit', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sam2-clibad-'));
  const weights = path.join(tmp, 'weights');
  const image = fixturePath('amg_truck', 'input.png');
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  before(() => {
    const ckpt = path.join(tmp, 'sam2.1_hiera_tiny.pt');
    writeFormulaCheckpoint(ckpt);
    portCheckpoint(ckpt, weights, { onProgress: () => undefined });
    fs.rmSync(ckpt);
  });

  it('walks the bad-input classes', async () => {
    const notImage = path.join(tmp, 'notes.txt');
    fs.writeFileSync(notImage, 'hello');
    const aFile = path.join(tmp, 'a-file');
    fs.writeFileSync(aFile, 'x');
    const m = ['--model', weights];
    const out = ['--out', path.join(tmp, 'o.png')];
    const cases: [string, string[], RegExp, Record<string, string>?][] = [
      ['no --model', ['segment', image, '--point', '1,2', ...out], /^sam2-tfjs segment: --model is required/],
      ['unknown option', ['segment', image, ...m, '--frob', ...out], /^sam2-tfjs segment: Unknown option '--frob'/],
      [
        'malformed point',
        ['segment', image, ...m, '--point', '1;2', ...out],
        /--point 1;2: each value must be a number/,
      ],
      [
        'bad label (names the point, not an index)',
        ['segment', image, ...m, '--point', '1,2,7', ...out],
        /--point 1,2,7: the label must be 1 \(foreground\) or 0 \(background\), got 7$/,
      ],
      ['bad box', ['segment', image, ...m, '--box', '1,2,3', ...out], /--box takes x0,y0,x1,y1/],
      [
        'missing image',
        ['segment', path.join(tmp, 'nope.png'), ...m, '--point', '1,2', ...out],
        /Cannot read image file ".*nope\.png": ENOENT/,
      ],
      [
        'not an image',
        ['segment', notImage, ...m, '--point', '1,2', ...out],
        /Cannot decode image file ".*notes\.txt"/,
      ],
      [
        'missing weights folder',
        ['segment', image, '--model', path.join(tmp, 'none'), '--point', '1,2', ...out],
        /Cannot read .*model\.json\. Port a checkpoint first/,
      ],
      [
        'bad image size',
        ['segment', image, ...m, '--image-size', '100', '--point', '1,2', ...out],
        /imageSize must be a multiple of 32/,
      ],
      [
        'auto: bad points per side',
        ['auto', image, ...m, '--image-size', '64', '--points-per-side', '0', '--out', path.join(tmp, 'a.json')],
        /pointsPerSide must be a positive integer, got 0/,
      ],
      [
        'track: malformed prompt names --prompt',
        ['track', tmp, ...m, '--prompt', '0:1:5', '--out', tmp],
        /^sam2-tfjs track: --prompt takes frame:obj:x,y\[,label\], got "0:1:5"$/,
      ],
      [
        'track: bad label',
        ['track', tmp, ...m, '--prompt', '0:1:10,10,7', '--out', tmp],
        /--prompt 0:1:10,10,7: the label must be 1 \(foreground\) or 0 \(background\), got 7$/,
      ],
      [
        'track: fractional object id',
        ['track', tmp, ...m, '--prompt', '0:1.5:10,10', '--out', tmp],
        /--prompt takes frame:obj:x,y/,
      ],
      [
        'track: .mp4 without ffmpeg',
        ['track', path.join(tmp, 'clip.mp4'), ...m, '--prompt', '0:1:5,5', '--out', path.join(tmp, 'mp4out')],
        /needs ffmpeg on PATH/,
        { PATH: path.dirname(process.execPath) },
      ],
      [
        'port: --out is a file',
        ['port', fixturePath('ckpt/tiny_heads_formula.pt'), '--out', aFile],
        /is a file, not a folder: give --out a folder/,
      ],
      ['port: missing checkpoint', ['port', path.join(tmp, 'missing.pt')], /Checkpoint file not found/],
      ['port: corrupt checkpoint', ['port', fixturePath('ckpt/truncated.pt')], /truncated or corrupt/],
      ['download: unknown model', ['download', 'sam3_huge'], /Unknown model "sam3_huge"/],
      ['info: unknown backend', ['info', '--backend', 'tpu'], /Unknown backend "tpu"/],
    ];
    const results = await pool(cases, ([, args, , env]) => run(args, env));
    cases.forEach(([what, , re], i) => {
      const r = results[i];
      const lines = r.err.trim().split('\n');
      expect(r.code, `${what}: ${r.err}`).to.be.greaterThan(0);
      expect(lines, `${what}: ${r.err}`).to.have.length(1);
      expect(lines[0], what).to.match(re);
    });
    // the failed .mp4 run created nothing
    expect(fs.existsSync(path.join(tmp, 'mp4out'))).to.equal(false);
  });

  it('--version; outputs in missing folders are written; an empty auto result names the thresholds', async () => {
    const frames = path.join(tmp, 'frames');
    fs.mkdirSync(frames);
    for (let i = 0; i < 2; i++) {
      const img = new Jimp({ width: 24, height: 16, color: 0x202020ff });
      fs.writeFileSync(path.join(frames, `0000${i}.png`), await img.getBuffer('image/png'));
    }
    const deep = (...p: string[]) => path.join(tmp, 'new', ...p);
    const m = ['--model', weights, '--image-size', '64'];
    const [v, seg, auto, track] = await pool(
      [
        ['--version'],
        [
          'segment',
          image,
          ...m,
          '--point',
          '200,150',
          '--out',
          deep('seg', 'mask.png'),
          '--overlay',
          deep('ov', 'o.png'),
        ],
        ['auto', image, ...m, '--points-per-side', '1', '--pred-iou-thresh', '1', '--out', deep('auto', 'masks.json')],
        ['track', frames, ...m, '--prompt', '0:1:5,5', '--out', deep('track', 'out')],
      ],
      (args) => run(args),
    );
    expect(v.code).to.equal(0);
    expect(v.out.trim()).to.equal(
      JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version,
    );
    for (const [r, f] of [
      [seg, deep('seg', 'mask.png')],
      [seg, deep('ov', 'o.png')],
      [auto, deep('auto', 'masks.json')],
      [track, deep('track', 'out', '00001_obj1.png')],
    ] as const) {
      expect(r.code, r.err).to.equal(0);
      expect(fs.existsSync(f), f).to.equal(true);
    }
    expect(JSON.parse(fs.readFileSync(deep('auto', 'masks.json'), 'utf8'))).to.deep.equal([]);
    expect(auto.err.trim()).to.match(
      /^sam2-tfjs auto: no masks: of 3 candidate masks, 3 at or below --pred-iou-thresh 1; lower those thresholds to keep more\.$/,
    );
  });
});
