/** Batch runs without a model: the file walk, atomic writes, queue URLs and job ids, progress drawing. */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { findImages, isCompleteOutput, jsonRelPath, outputPath, writeFileAtomic } from '../../src/batch/files';
import { jobIdFor, parseRedisUrl } from '../../src/batch/queue';
import { batchProgressView, formatDuration } from '../../src/cli/batch_progress';

const IMAGES = ['a.png', 'sub/b.jpg', 'sub/deep/c.png', 'z/d.jpeg'];

describe('batch runs: files, queue ids, progress (no model)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sam2-batch-unit-'));
  const data = path.join(tmp, 'data');
  const bad = path.join(tmp, 'bad');

  before(() => {
    // names are all the walk looks at
    for (const rel of IMAGES) {
      fs.mkdirSync(path.dirname(path.join(data, rel)), { recursive: true });
      fs.writeFileSync(path.join(data, rel), 'x');
    }
    fs.writeFileSync(path.join(data, 'notes.txt'), 'not an image, not searched');
    fs.mkdirSync(bad);
    fs.writeFileSync(path.join(bad, 'corrupt.jpg'), 'x');
  });

  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('walks directories recursively, maps outputs, refuses two images with one output', () => {
    const found = findImages([data, path.join(bad, 'corrupt.jpg')]);
    expect(found.map((f) => f.relPath)).to.deep.equal([...IMAGES, 'corrupt.jpg']);
    expect(jsonRelPath('sub/deep/c.png')).to.equal('sub/deep/c.json');
    expect(outputPath('/o', found[2])).to.equal(path.join('/o', 'sub', 'deep', 'c.json'));
    expect(() => findImages([data, path.join(data, 'a.png')])).to.throw(/would both write a\.json/);
    expect(() => findImages([path.join(tmp, 'nope')])).to.throw(/does not exist/);
  });

  it('writes atomically and tells complete outputs from partial ones', () => {
    const f = path.join(tmp, 'atomic', 'x', 'a.json');
    writeFileAtomic(f, JSON.stringify({ image: { file_name: 'x/a.png' }, annotations: [] }));
    writeFileAtomic(f, JSON.stringify({ image: { file_name: 'x/a.png' }, annotations: [1] }));
    expect(fs.readdirSync(path.dirname(f))).to.deep.equal(['a.json']); // no temporary file left
    expect(isCompleteOutput(f, 'x/a.png')).to.equal(true);
    expect(isCompleteOutput(f, 'x/b.png')).to.equal(false);
    fs.writeFileSync(f, '{"image":{"file_name":"x/a.png"},"annotations":[{"id":1,');
    expect(isCompleteOutput(f, 'x/a.png')).to.equal(false);
    expect(isCompleteOutput(path.join(tmp, 'missing.json'), 'x/a.png')).to.equal(false);
  });

  it('parses queue URLs; job ids come from the relative path, bytes and options', () => {
    expect(parseRedisUrl('redis://10.0.0.5:6390/2')).to.deep.equal({ host: '10.0.0.5', port: 6390, db: 2 });
    expect(parseRedisUrl('redis://localhost')).to.deep.equal({ host: 'localhost', port: 6379, db: 0 });
    expect(() => parseRedisUrl('http://x:1')).to.throw(/redis:\/\/HOST:PORT\[\/DB\]/);
    expect(() => parseRedisUrl('redis://x:1/abc')).to.throw(/redis:\/\/HOST:PORT/);
    const id = jobIdFor('sub/a:1.png', Buffer.from('x'), { pointsPerSide: 4 });
    expect(id).to.match(/^sub\/a%3A1\.png#[0-9a-f]{16}$/);
    expect(jobIdFor('sub/a:1.png', Buffer.from('x'), { pointsPerSide: 4 })).to.equal(id);
    expect(jobIdFor('sub/a:1.png', Buffer.from('x'), { pointsPerSide: 8 })).to.not.equal(id);
  });

  it('loads bullmq only when a queue is used', () => {
    // a fresh process: this one may have loaded bullmq for other tests
    const root = path.join(__dirname, '..', '..');
    const code = `require(${JSON.stringify(path.join(root, 'src', 'index.ts'))}); require(${JSON.stringify(path.join(root, 'src', 'cli', 'main.ts'))});
      console.log(Object.keys(require.cache).filter((k) => /node_modules[\\\\/](bullmq|ioredis)[\\\\/]/.test(k)).length)`;
    const r = spawnSync(process.execPath, ['-r', 'tsx/cjs', '-e', code], {
      encoding: 'utf8',
      cwd: root,
      env: { ...process.env, SAM2_TFJS_QUIET: '1' },
    });
    expect(r.stdout.trim(), r.stderr).to.equal('0');
  });

  it('draws a bar on a TTY and plain lines otherwise', () => {
    const sink = (isTTY: boolean) => {
      const s = { text: '', isTTY, write: (t: string) => (s.text += t) };
      return s;
    };
    const img = {
      file: 'd/a.png',
      relPath: 'a.png',
      output: 'o/a.json',
      status: 'written' as const,
      masks: 3,
      seconds: 2,
    };
    const steps = [
      { total: 2, done: 0, failed: 0, skipped: 1, elapsed: 0 },
      { total: 2, done: 0, failed: 0, skipped: 1, elapsed: 1, current: { relPath: 'a.png', done: 1, total: 2 } },
      { total: 2, done: 1, failed: 0, skipped: 1, elapsed: 30, image: img },
      {
        total: 2,
        done: 2,
        failed: 1,
        skipped: 1,
        elapsed: 60,
        image: { ...img, relPath: 'b.png', status: 'failed' as const, error: 'Cannot decode' },
      },
    ];
    const [out, err] = [sink(false), sink(false)];
    const plain = batchProgressView(out, err);
    steps.forEach(plain);
    expect(out.text.split('\n')).to.deep.equal([
      '2 images to do, 1 already done (skipped)',
      '[1/2] a.png: 3 masks -> o/a.json (2.0 s)',
      '[2/2] b.png: FAILED: Cannot decode',
      '',
    ]);
    expect(err.text).to.equal('');
    const [tout, terr] = [sink(false), sink(true)];
    const bar = batchProgressView(tout, terr);
    steps.forEach(bar);
    expect(terr.text).to.contain('[###############...............] 1/2 images  2.0 img/min  ~30s left');
    expect(terr.text).to.contain('(a.png: 1/2 point batches)');
    expect(terr.text).to.contain('[2/2] b.png: FAILED: Cannot decode\n');
    expect(terr.text.endsWith('2/2 images, 1 failed  2.0 img/min  \n')).to.equal(true);
    expect(formatDuration(75)).to.equal('1m15s');
    expect(formatDuration(3725)).to.equal('1h02m');
  });
});
