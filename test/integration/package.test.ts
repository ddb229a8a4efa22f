import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import { writeFormulaCheckpoint } from '../helpers/torch_writer';
import { loadSam2, portCheckpoint, SamPredictor } from '../../src/index';

const root = path.join(__dirname, '..', '..');

describe('package: entry points and the quickstart path', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sam2-pkg-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('the CommonJS build exports the public API (what tslab notebooks require)', () => {
    const cjs = require(path.join(root, 'dist/cjs/index.js'));
    for (const name of [
      'loadSam2',
      'SamPredictor',
      'portCheckpoint',
      'readPortedWeights',
      'initBackend',
      'Sam2Error',
    ]) {
      expect(cjs[name], name).to.be.a('function');
    }
  });

  it('internals (model components, layers) are on the sam2-tfjs/internals subpath, not the main entry', () => {
    const main = require(path.join(root, 'dist/cjs/index.js'));
    const internals = require(path.join(root, 'dist/cjs/internals.js'));
    for (const name of ['Tracker', 'MemoryAttention', 'Weights', 'VideoState', 'Sam2Layer', 'ImageEncoder']) {
      expect(main[name], `main entry exports ${name}`).to.equal(undefined);
      expect(typeof internals[name], name).to.equal('function');
    }
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    expect(pkg.exports['./internals'].require).to.equal('./dist/cjs/internals.js');
  });

  it('the npm package holds the entry points, the CLI, the worker thread and the weight porter', () => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const files = new Set((JSON.parse(out)[0].files as { path: string }[]).map((f) => f.path));
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    for (const f of [
      pkg.main,
      pkg.types,
      pkg.module,
      pkg.bin['sam2-tfjs'],
      'dist/cjs/model/memory_attention_worker.js',
      'dist/cjs/wasm_helper_worker.js',
      'dist/cjs/io/expected_keys.json',
      'scripts/port_weights.ts',
      'README.md',
    ]) {
      expect(files.has(f.replace(/^\.\//, '')), f).to.equal(true);
    }
    expect(
      [...files].filter((f) => f.startsWith('test/') || f.startsWith('src/') || f.startsWith('dist/cjs/testing/')),
    ).to.deep.equal([]);
    for (const f of ['dist/cjs/internals.js', 'dist/esm/internals.mjs']) expect(files.has(f), f).to.equal(true);
  });

  it('the ESM entry re-exports the same API', () => {
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { loadSam2, SamPredictor } from ${JSON.stringify(path.join(root, 'dist/esm/index.mjs'))}; console.log(typeof loadSam2, typeof SamPredictor)`,
      ],
      { encoding: 'utf8', env: { ...process.env, SAM2_TFJS_QUIET: '1' } },
    );
    expect(out.trim()).to.equal('function function');
  });

  it('port -> loadSam2 -> SamPredictor.predict works end to end (at 256 px) and leaks nothing', async () => {
    const ckpt = path.join(tmp, 'sam2.1_hiera_tiny.pt');
    writeFormulaCheckpoint(ckpt);
    const dir = path.join(tmp, 'weights');
    portCheckpoint(ckpt, dir);
    const before = tf.memory().numTensors;
    const model = await loadSam2(dir, { imageSize: 256, backend: 'wasm' });
    expect(model.config.imageSize).to.equal(256);
    const predictor = new SamPredictor(model);
    const image = { data: new Uint8Array(120 * 80 * 3).map((_, i) => (i * 7) % 256), width: 120, height: 80 };
    await predictor.setImage(image);
    const r = await predictor.predict({ pointCoords: [[60, 40]], pointLabels: [1] });
    expect(r.masks).to.have.length(3);
    expect(r.masks[0].length).to.equal(120 * 80);
    expect(r.lowResLogits[0].length).to.equal(64 * 64);
    predictor.dispose();
    model.dispose();
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('loadSam2 also reads a ported folder over HTTP', async () => {
    const dir = path.join(tmp, 'weights');
    const server = http.createServer((req, res) => {
      const file = path.join(dir, path.basename(req.url ?? ''));
      if (!req.url?.startsWith('/weights/')) return res.writeHead(404).end();
      if (!fs.existsSync(file)) return res.writeHead(404).end();
      res.writeHead(200).end(fs.readFileSync(file));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/weights/`;
      const model = await loadSam2(url, { imageSize: 256 });
      expect(model.config.name).to.equal('sam2.1_hiera_tiny');
      model.dispose();
      try {
        await loadSam2(`http://127.0.0.1:${(server.address() as AddressInfo).port}/missing/x/`);
        expect.fail('should throw');
      } catch (e) {
        expect((e as Error).message).to.match(/HTTP 404/);
      }
    } finally {
      server.close();
    }
  });
});
