import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Jimp } from 'jimp';
import { fixturePath } from '../helpers';

const root = path.join(__dirname, '..', '..');

function example(name: string) {
  return spawnSync(
    process.execPath,
    ['--import', 'tsx', path.join(root, 'examples', name), fixturePath('amg_truck', 'input.png')],
    {
      encoding: 'utf8',
      env: { ...process.env, SAM2_EXAMPLE_FORMULA: '1', SAM2_TFJS_BACKEND: 'wasm' },
    },
  );
}

describe('examples run (formula weights at a small size)', () => {
  it('image_predictor.ts writes its overlays', async () => {
    const r = example('image_predictor.ts');
    expect(r.status, r.stderr).to.equal(0);
    for (const f of ['click_mask0.png', 'two_clicks.png', 'box_negative_click.png', 'boxes.png']) {
      const img = await Jimp.read(path.join(root, 'examples', 'out', f));
      expect(img.bitmap.width, f).to.equal(450);
    }
  });

  it('automatic_masks.ts writes its overlay', () => {
    const r = example('automatic_masks.ts');
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/\d+ masks in/);
    expect(fs.existsSync(path.join(root, 'examples', 'out', 'auto_masks.png'))).to.equal(true);
  });

  it('video_tracking.ts writes per-frame overlays', () => {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', path.join(root, 'examples', 'video_tracking.ts'), fixturePath('videos/bedroom')],
      {
        encoding: 'utf8',
        env: { ...process.env, SAM2_EXAMPLE_FORMULA: '1', SAM2_EXAMPLE_SIZE: '128', SAM2_TFJS_BACKEND: 'wasm' },
      },
    );
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/frame 2: 2 objects/);
    expect(fs.existsSync(path.join(root, 'examples', 'out', 'video_00002.png'))).to.equal(true);
    const bad = spawnSync(
      process.execPath,
      ['--import', 'tsx', path.join(root, 'examples', 'video_tracking.ts'), '/nonexistent-frames'],
      {
        encoding: 'utf8',
        env: { ...process.env, SAM2_EXAMPLE_FORMULA: '1', SAM2_EXAMPLE_SIZE: '128', SAM2_TFJS_BACKEND: 'wasm' },
      },
    );
    expect(bad.status).to.equal(1);
    expect(bad.stderr.trim().split('\n').pop()).to.match(
      /^error: Video source "\/nonexistent-frames" is not a directory of frames/,
    );
  });

  it('explains how to get weights when none are ported', () => {
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(root, 'examples', 'image_predictor.ts'),
        fixturePath('amg_truck', 'input.png'),
        '/nonexistent',
      ],
      {
        encoding: 'utf8',
      },
    );
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/npx sam2-tfjs download sam2\.1_hiera_tiny/);
  });
});
