/**
 * Batch automatic masks (the model-free parts are in test/unit/batch_files.test.ts): the CLI end to end on a ported formula checkpoint at 128 px with a 4x4 grid: local runs
 * (resume, --overwrite, a corrupt image, a run killed mid-way) and the BullMQ path against a
 * real redis-server on loopback (two workers, one SIGKILLed mid-job; SIGTERM mid-job).
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { Jimp } from 'jimp';
import { jsonRelPath, writeFileAtomic } from '../../src/batch/files';
import { parseRedisUrl } from '../../src/batch/queue';
import { main } from '../../src/cli/main';
import { writeFormulaCheckpoint } from '../helpers/torch_writer';

const cli = path.join(__dirname, '..', '..', 'src', 'cli', 'main.ts');
const env = { ...process.env, SAM2_TFJS_BACKEND: 'wasm' };
/** Model and grid flags every run uses (thresholds 0: formula weights score low). */
const AMG = ['--points-per-side', '4', '--pred-iou-thresh', '0', '--stability-score-thresh', '0'];
const IMAGES = ['a.png', 'sub/b.jpg', 'sub/deep/c.png', 'z/d.jpeg'];

function run(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], { encoding: 'utf8', env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A CLI process whose output lines can be awaited. */
interface Proc {
  child: ChildProcess;
  lines: string[];
  /** The first line matching `re` among those after the first `since` lines. */
  waitFor(re: RegExp, since?: number): Promise<string>;
  exited: Promise<number | null>;
}
const children: ChildProcess[] = [];

/**
 * SIGKILLs the first of several processes whose newest output line matches `re` and has
 * nothing after it, in the same tick the line is read: that process is then still inside the
 * job the line announced. (Waiting for the line and killing afterwards is racy: a starved test
 * process can read "start x", "done x", "start y" in one chunk.)
 */
interface KillTrap {
  re: RegExp;
  armed: boolean;
  fired: (hit: { proc: Proc; line: string }) => void;
}

function start(...args: string[]): Proc;
function start(trap: KillTrap, ...args: string[]): Proc;
function start(...all: (string | KillTrap)[]): Proc {
  const trap = typeof all[0] === 'string' ? undefined : (all.shift() as KillTrap);
  const args = all as string[];
  const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  let buf = '';
  const onData = (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      for (const w of [...waiters]) {
        if (!w.re.test(l)) continue;
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(l);
      }
    }
    const last = lines[lines.length - 1];
    if (trap?.armed && buf === '' && parts.length > 0 && trap.re.test(last)) {
      trap.armed = false;
      child.kill('SIGKILL');
      trap.fired({ proc, line: last });
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const proc: Proc = {
    child,
    lines,
    exited,
    waitFor(re, since = 0) {
      const ms = 120_000;
      const seen = lines.slice(since).find((l) => re.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}; output:\n${lines.join('\n')}`)), ms);
        waiters.push({ re, resolve: (l) => (clearTimeout(t), resolve(l)) });
        void exited.then(
          (code) => (clearTimeout(t), reject(new Error(`exited (${code}) before ${re}; output:\n${lines.join('\n')}`))),
        );
      });
    },
  };
  return proc;
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Every .json under `dir` (relative path -> text). */
function outputs(dir: string): Map<string, string> {
  const m = new Map<string, string>();
  const walk = (d: string, rel: string) => {
    for (const n of fs.readdirSync(d)) {
      const f = path.join(d, n);
      if (fs.statSync(f).isDirectory()) walk(f, rel ? `${rel}/${n}` : n);
      else if (n.endsWith('.json')) m.set(rel ? `${rel}/${n}` : n, fs.readFileSync(f, 'utf8'));
    }
  };
  if (fs.existsSync(dir)) walk(dir, '');
  return m;
}

const stamp = (f: string) => {
  const s = fs.statSync(f);
  return `${s.ino}:${s.mtimeMs}`;
};

describe('batch automatic masks (auto --out-dir, --queue, worker)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sam2-batch-'));
  const data = path.join(tmp, 'data');
  const bad = path.join(tmp, 'bad');
  const weights = path.join(tmp, 'weights');
  const model = ['--model', weights, '--image-size', '128'];
  const localDir = path.join(tmp, 'local');

  before(async () => {
    for (const [i, rel] of IMAGES.entries()) {
      const img = new Jimp({ width: 40 + 8 * i, height: 32, color: 0x303030ff });
      for (let y = 6; y < 24; y++) for (let x = 5 + 3 * i; x < 22 + 2 * i; x++) img.setPixelColor(0xd0a040ff, x, y);
      fs.mkdirSync(path.dirname(path.join(data, rel)), { recursive: true });
      fs.writeFileSync(path.join(data, rel), await img.getBuffer(rel.endsWith('png') ? 'image/png' : 'image/jpeg'));
    }
    fs.writeFileSync(path.join(data, 'notes.txt'), 'not an image, not searched');
    fs.mkdirSync(bad);
    fs.writeFileSync(path.join(bad, 'corrupt.jpg'), Buffer.from('this is not a JPEG'));
  });

  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('auto DIR --out-dir: SA-1B JSON per image, same as the single-image run; a run killed mid-way resumes', async () => {
    const ckpt = path.join(tmp, 'sam2.1_hiera_tiny.pt');
    writeFormulaCheckpoint(ckpt);
    const p = run('port', ckpt, '--out', weights);
    expect(p.code, p.err).to.equal(0);
    fs.rmSync(ckpt);

    // killed as soon as the first image is written: only whole JSON files are left
    const killed = start('auto', data, bad, ...model, ...AMG, '--out-dir', localDir);
    await killed.waitFor(/^\[1\/5\] /);
    killed.child.kill('SIGKILL');
    await killed.exited;
    const partial = outputs(localDir);
    expect(partial.size).to.be.within(1, 4);
    for (const [rel, text] of partial) expect(() => JSON.parse(text), rel).to.not.throw();

    const r = run('auto', data, bad, ...model, ...AMG, '--out-dir', localDir);
    expect(r.code, r.err).to.equal(1); // the corrupt image
    expect(r.out).to.contain(`${5 - partial.size} images to do, ${partial.size} already done (skipped)`);
    expect(r.out).to.match(/\] corrupt\.jpg: FAILED: Cannot decode image file ".*corrupt\.jpg"/);
    expect(r.out).to.match(
      new RegExp(`${4 - partial.size} written, ${partial.size} skipped \\(already done\\), 1 failed, of 5 images`),
    );
    expect(r.err).to.match(/^failed: .*corrupt\.jpg: Cannot decode/m);
    expect(r.err.trim().split('\n').pop()).to.equal('sam2-tfjs auto: 1 of 5 images failed (listed above)');
    const all = outputs(localDir);
    expect([...all.keys()].sort()).to.deep.equal(IMAGES.map(jsonRelPath).sort());

    const doc = JSON.parse(all.get('sub/b.json')!);
    expect(doc.image).to.deep.equal({ file_name: 'sub/b.jpg', width: 48, height: 32 });
    expect(doc.annotations.length).to.be.greaterThan(0);
    expect(Object.keys(doc.annotations[0])).to.deep.equal([
      'id',
      'segmentation',
      'area',
      'bbox',
      'predicted_iou',
      'stability_score',
      'point_coords',
      'crop_box',
    ]);
    expect(doc.annotations[0].segmentation.size).to.deep.equal([32, 48]);
    expect(doc.annotations[0].segmentation.counts).to.be.a('string');

    // the single-image form still writes its own format, with the same masks
    const single = path.join(tmp, 'single.json');
    const s = run('auto', path.join(data, 'sub', 'b.jpg'), ...model, ...AMG, '--out', single);
    expect(s.code, s.err).to.equal(0);
    const anns = JSON.parse(fs.readFileSync(single, 'utf8'));
    expect(doc.annotations).to.deep.equal(
      anns.map((a: Record<string, unknown>, i: number) => ({
        id: i + 1,
        segmentation: a.segmentation,
        area: a.area,
        bbox: a.bbox,
        predicted_iou: a.predictedIou,
        stability_score: a.stabilityScore,
        point_coords: a.pointCoords,
        crop_box: a.cropBox,
      })),
    );
  });

  it('a second run rewrites nothing and loads no model; --overwrite redoes', () => {
    const files = IMAGES.map((rel) => path.join(localDir, jsonRelPath(rel)));
    const before = files.map(stamp);
    const r = run('auto', data, ...model, ...AMG, '--out-dir', localDir);
    expect(r.code, r.err).to.equal(0);
    expect(r.out).to.contain('0 images to do, 4 already done (skipped)');
    expect(r.out).to.contain('0 written, 4 skipped (already done), 0 failed, of 4 images');
    expect(files.map(stamp)).to.deep.equal(before);

    // a file input writes <basename>.json: a complete one is skipped, --overwrite recomputes it
    const one = path.join(data, 'z', 'd.jpeg');
    const f = path.join(tmp, 'one', 'd.json');
    writeFileAtomic(f, JSON.stringify({ image: { file_name: 'd.jpeg', width: 1, height: 1 }, annotations: [] }));
    const skip = run('auto', one, ...model, ...AMG, '--out-dir', path.join(tmp, 'one'));
    expect(skip.out).to.contain('0 written, 1 skipped');
    const o = run('auto', one, ...model, ...AMG, '--out-dir', path.join(tmp, 'one'), '--overwrite');
    expect(o.code, o.err).to.equal(0);
    expect(o.out).to.contain('1 written, 0 skipped');
    // file_name is the basename for a file input; the masks are those of the directory run
    const a = JSON.parse(fs.readFileSync(f, 'utf8'));
    const b = JSON.parse(fs.readFileSync(path.join(localDir, 'z', 'd.json'), 'utf8'));
    expect(a.image.file_name).to.equal('d.jpeg');
    expect(a.annotations).to.deep.equal(b.annotations);
  });

  it('checks the batch flags before any work', async () => {
    // in-process: these fail before loading anything, a process per case would only add start-up time
    const call = async (...args: string[]) => {
      const [log, error] = [console.log, console.error];
      let out = '';
      let err = '';
      console.log = (...a: unknown[]) => (out += `${a.join(' ')}\n`);
      console.error = (...a: unknown[]) => (err += `${a.join(' ')}\n`);
      try {
        return { code: await main(args), out, err };
      } finally {
        [console.log, console.error] = [log, error];
      }
    };
    const both = await call('auto', data, ...model, '--out', 'x.json', '--out-dir', 'o');
    expect(both.code).to.equal(2);
    expect(both.err.split('\n')[0]).to.match(/give --out \(one image\) or --out-dir \(many\), not both/);
    const badUrl = await call('auto', data, '--out-dir', path.join(tmp, 'q'), '--queue', 'localhost:6379');
    expect(badUrl.code).to.equal(1);
    expect(badUrl.err.trim()).to.match(
      /^sam2-tfjs auto: The queue must be a URL like redis:\/\/HOST:PORT\[\/DB\], got "localhost:6379"\.$/,
    );
    const badOpt = await call('auto', data, ...model, '--out-dir', path.join(tmp, 'q'), '--pred-iou-thresh', '3');
    expect(badOpt.code).to.equal(1);
    expect(badOpt.err.trim()).to.match(/^sam2-tfjs auto: predIouThresh must be in \[0, 1\]/);
    const noModel = await call('auto', data, '--out-dir', path.join(tmp, 'q'));
    expect(noModel.code).to.equal(2);
    expect(noModel.err.split('\n')[0]).to.match(/--model is required/);
    const noQueue = await call('worker', ...model);
    expect(noQueue.code).to.equal(2);
    expect(noQueue.err.split('\n')[0]).to.match(/--queue redis:\/\/HOST:PORT\[\/DB\] is required/);
    expect((await call('worker', '--help')).out).to.match(/^sam2-tfjs worker --queue/);
    expect((await call('--help')).out).to.match(/^sam2-tfjs worker --queue/m);
    expect(fs.existsSync(path.join(tmp, 'q'))).to.equal(false);
  });

  describe('on BullMQ with a real redis-server', () => {
    let redis: ChildProcess | undefined;
    let url = '';

    before(async function () {
      if (spawnSync('redis-server', ['--version']).error) {
        if (process.env.CI)
          throw new Error('redis-server is not installed (Debian package redis-server; .ci/run installs it)');
        this.skip();
      }
      const port = await freePort();
      url = `redis://127.0.0.1:${port}`;
      redis = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        { stdio: 'ignore' },
      );
      const { default: IORedis } = await import('ioredis');
      for (let i = 0; ; i++) {
        const c = new IORedis(port, '127.0.0.1', {
          lazyConnect: true,
          retryStrategy: () => null,
          maxRetriesPerRequest: 0,
        });
        try {
          await c.connect();
          await c.ping();
          c.disconnect();
          break;
        } catch (e) {
          c.disconnect();
          if (i > 50) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    });

    after(async () => {
      if (!redis || redis.exitCode !== null) return;
      const gone = new Promise((r) => redis!.on('exit', r));
      redis.kill('SIGTERM');
      await gone;
    });

    it('two workers, one SIGKILLed mid-job: every image done once, same JSON as the local run; re-runs add no jobs', async () => {
      const queued = path.join(tmp, 'queued');
      const producerArgs = ['auto', data, bad, ...AMG, '--out-dir', queued, '--queue', url];
      const { Queue } = await import('bullmq');
      const { host, port } = parseRedisUrl(url);
      const q = new Queue('sam2-tfjs-auto', { connection: { host, port } });
      try {
        // a producer with no workers yet enqueues 5 jobs; killed and started again, it adds none
        const first = start(...producerArgs);
        for (let i = 0; (await q.getJobCountByTypes('wait')) < 5; i++) {
          if (i > 600) throw new Error(`jobs not enqueued:\n${first.lines.join('\n')}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        first.child.kill('SIGKILL');
        await first.exited;
        const producer = start(...producerArgs);
        await producer.waitFor(/^5 images to do$/);
        await new Promise((r) => setTimeout(r, 1000));
        expect(await q.getJobCountByTypes('wait', 'active', 'delayed', 'completed', 'failed')).to.equal(5);

        const workerArgs = ['worker', '--queue', url, ...model, '--lock-duration', '8'];
        // kill whichever worker starts an image first, in the middle of it (the corrupt one fails at once)
        let hit: { proc: Proc; line: string } | undefined;
        const trap: KillTrap = { re: /^start (?!corrupt\.jpg )/, armed: true, fired: (h) => (hit = h) };
        const w = [start(trap, ...workerArgs), start(trap, ...workerArgs)];
        for (let i = 0; !hit; i++) {
          if (i > 1200) throw new Error(`no worker started an image:\n${w.map((x) => x.lines.join('\n')).join('\n')}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        const { proc: victim, line } = hit;
        const survivor = w.find((x) => x !== victim)!;
        await victim.exited;
        expect(await producer.exited, producer.lines.join('\n')).to.equal(1); // the corrupt image
        expect(
          producer.lines.some((l) => /^\[\d\/5\] corrupt\.jpg: FAILED: Cannot decode image bytes/.test(l)),
        ).to.equal(true);

        // the lost job was redone by the survivor, and nothing was done twice
        const lost = /^start (\S+) /.exec(line)![1];
        const unfinished = victim.lines
          .filter((l) => l.startsWith('start '))
          .map((l) => /^start (\S+) /.exec(l)![1])
          .filter((rel) => !victim.lines.some((l) => l.startsWith(`done ${rel}:`) || l.startsWith(`failed ${rel}:`)));
        expect(unfinished).to.deep.equal([lost]);
        for (const rel of unfinished)
          expect(
            survivor.lines.some((l) => l.startsWith(`start ${rel} `)),
            rel,
          ).to.equal(true);
        const both = [...victim.lines, ...survivor.lines];
        const logs = `victim:\n${victim.lines.join('\n')}\nsurvivor:\n${survivor.lines.join('\n')}`;
        for (const rel of IMAGES)
          expect(
            both.filter((l) => l.startsWith(`done ${rel}:`)),
            `${rel}\n${logs}`,
          ).to.have.length(1);
        expect(both.filter((l) => l.startsWith('failed corrupt.jpg: Cannot decode image bytes'))).to.have.length(1); // no retries
        for (const rel of [...IMAGES, 'corrupt.jpg'])
          expect(
            producer.lines.filter((l) => l.includes(`] ${rel}: `)),
            rel,
          ).to.have.length(1);

        // the acceptance check: the same JSON as the local run, byte for byte
        const local = outputs(localDir);
        const remote = outputs(queued);
        expect([...remote.keys()].sort()).to.deep.equal([...local.keys()].sort());
        for (const [rel, text] of local) expect(remote.get(rel), rel).to.equal(text);
        // finished jobs are removed once written
        expect(await q.getJobCountByTypes('wait', 'active', 'delayed', 'completed', 'failed')).to.equal(0);

        // SIGTERM in the middle of a job: the worker finishes it, then exits
        const since = survivor.lines.length;
        const again = start(
          'auto',
          path.join(data, 'a.png'),
          ...AMG,
          '--out-dir',
          path.join(tmp, 'queued2'),
          '--queue',
          url,
        );
        await survivor.waitFor(/^start a\.png /, since);
        survivor.child.kill('SIGTERM');
        expect(await again.exited, again.lines.join('\n')).to.equal(0);
        expect(await survivor.exited).to.equal(0);
        // (the job may end before the signal is handled: node runs handlers between tasks)
        const tail = survivor.lines.slice(-3);
        expect(tail.slice(0, 2).sort()[0]).to.match(/^done a\.png: \d+ masks/);
        expect(tail.slice(0, 2).sort()[1]).to.equal('stopping: finishing the current job');
        expect(tail[2]).to.match(/^worker stopped: \d+ jobs done, 1 failed$/);
        expect(fs.readFileSync(path.join(tmp, 'queued2', 'a.json'), 'utf8')).to.equal(local.get('a.json'));
      } finally {
        await q.close();
      }
    });
  });
});
