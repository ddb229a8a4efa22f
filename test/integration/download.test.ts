import { expect } from 'chai';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import { spawn } from 'child_process';
import { fixturePath } from '../helpers';
import { writeFormulaCheckpoint } from '../helpers/torch_writer';
import { checkpointUrl, downloadCheckpoint } from '../../src/io/download';
import { Sam2Error } from '../../src/errors';

const root = path.join(__dirname, '..', '..');

/** A loopback server for one file with Range support and scripted misbehaviour. */
function serve(body: Buffer) {
  const state = {
    cutAfter: 0,
    lieAboutSize: 0,
    stallAfter: 0,
    chunkDelayMs: 0,
    rangeOffBy: 0,
    requests: [] as string[],
  };
  const server = http.createServer((req, res) => {
    state.requests.push(req.headers.range ?? 'full');
    if (!req.url?.endsWith('.pt')) return res.writeHead(404).end();
    const m = /bytes=(\d+)-/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    const total = body.length + state.lieAboutSize;
    const chunk = body.subarray(start);
    res.writeHead(m ? 206 : 200, {
      'Content-Length': String(total - start),
      ...(m ? { 'Content-Range': `bytes ${start + state.rangeOffBy}-${total - 1}/${total}` } : {}),
    });
    if (state.stallAfter > 0) {
      res.write(chunk.subarray(0, state.stallAfter)); // then nothing more, connection left open
      state.stallAfter = 0;
      setTimeout(() => res.destroy(), 5000);
      return;
    }
    if (state.chunkDelayMs > 0) {
      // a slow but steady server: 8 pieces spaced out in time
      const n = 8,
        size = Math.ceil(chunk.length / n);
      const send = (i: number): void => {
        if (i === n) return void res.end();
        res.write(chunk.subarray(i * size, (i + 1) * size));
        setTimeout(() => send(i + 1), state.chunkDelayMs);
      };
      return send(0);
    }
    if (state.cutAfter > 0) {
      res.write(chunk.subarray(0, state.cutAfter));
      state.cutAfter = 0;
      setTimeout(() => res.destroy(), 20); // the connection drops mid-transfer
      return;
    }
    res.end(chunk);
    if (state.lieAboutSize) setTimeout(() => res.destroy(), 20);
  });
  return new Promise<{ url: string; state: typeof state; close: () => void }>((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        state,
        close: () => server.close(),
      }),
    ),
  );
}

describe('checkpoint downloads (local HTTP server on 127.0.0.1)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sam2-dl-'));
  const body = fs.readFileSync(fixturePath('ckpt/tiny_heads_formula.pt'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('knows the official URLs and rejects unknown models', () => {
    expect(checkpointUrl('sam2.1_hiera_tiny')).to.equal(
      'https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt',
    );
    expect(checkpointUrl('sam2_hiera_large')).to.equal(
      'https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_large.pt',
    );
    expect(() => checkpointUrl('sam3_huge')).to.throw(Sam2Error, /Unknown model "sam3_huge"/);
  });

  it('downloads a whole file and reports progress', async () => {
    const srv = await serve(body);
    try {
      const file = path.join(tmp, 'a.pt');
      let last = 0;
      await downloadCheckpoint('sam2.1_hiera_tiny', file, { baseUrl: srv.url, onProgress: (r) => (last = r) });
      expect(fs.readFileSync(file).equals(body)).to.equal(true);
      expect(last).to.equal(body.length);
      expect(fs.existsSync(`${file}.part`)).to.equal(false);
    } finally {
      srv.close();
    }
  });

  it('keeps an interrupted transfer and resumes it with a Range request', async () => {
    const srv = await serve(body);
    try {
      const file = path.join(tmp, 'b.pt');
      srv.state.cutAfter = 1_000_000;
      let err: unknown;
      try {
        await downloadCheckpoint('sam2.1_hiera_tiny', file, { baseUrl: srv.url });
      } catch (e) {
        err = e;
      }
      expect((err as Sam2Error).code).to.equal('NETWORK');
      expect((err as Error).message).to.match(/again to resume/);
      expect(fs.statSync(`${file}.part`).size).to.equal(1_000_000);
      await downloadCheckpoint('sam2.1_hiera_tiny', file, { baseUrl: srv.url });
      expect(srv.state.requests).to.deep.equal(['full', 'bytes=1000000-']);
      expect(fs.readFileSync(file).equals(body)).to.equal(true);
    } finally {
      srv.close();
    }
  });

  it('rejects a transfer whose size does not match what the server announced', async () => {
    const srv = await serve(body);
    try {
      srv.state.lieAboutSize = 1234; // announces more bytes than it sends
      const file = path.join(tmp, 'c.pt');
      try {
        await downloadCheckpoint('sam2.1_hiera_tiny', file, { baseUrl: srv.url });
        expect.fail('should throw');
      } catch (e) {
        expect((e as Error).message).to.match(/stopped at \d+ of \d+ bytes|interrupted/);
      }
      expect(fs.existsSync(file)).to.equal(false);
    } finally {
      srv.close();
    }
  });

  it('lets a slow but steady transfer run longer than the answer timeout', async () => {
    const srv = await serve(body);
    try {
      srv.state.chunkDelayMs = 80; // ~640 ms in all, timeout 200 ms, stall limit 400 ms
      const file = path.join(tmp, 'slow.pt');
      const t0 = Date.now();
      await downloadCheckpoint('sam2.1_hiera_tiny', file, { baseUrl: srv.url, timeoutMs: 200, stallMs: 400 });
      expect(Date.now() - t0).to.be.above(400);
      expect(fs.readFileSync(file).equals(body)).to.equal(true);
    } finally {
      srv.close();
    }
  });

  it('gives up on a stalled transfer, keeping the part file for a resume', async () => {
    const srv = await serve(body);
    try {
      srv.state.stallAfter = 500_000;
      const file = path.join(tmp, 'stall.pt');
      const t0 = Date.now();
      try {
        await downloadCheckpoint('sam2.1_hiera_tiny', file, { baseUrl: srv.url, stallMs: 300 });
        expect.fail('should throw');
      } catch (e) {
        expect((e as Error).message).to.match(
          /interrupted at 500000 bytes \(no data received for a while\); run the same command again to resume/,
        );
      }
      expect(Date.now() - t0).to.be.below(3000);
      expect(fs.statSync(`${file}.part`).size).to.equal(500_000);
      await downloadCheckpoint('sam2.1_hiera_tiny', file, { baseUrl: srv.url });
      expect(fs.readFileSync(file).equals(body)).to.equal(true);
    } finally {
      srv.close();
    }
  });

  it('refuses a resume answered with a different byte range', async () => {
    const srv = await serve(body);
    try {
      const file = path.join(tmp, 'range.pt');
      fs.writeFileSync(`${file}.part`, body.subarray(0, 1000));
      srv.state.rangeOffBy = 24;
      try {
        await downloadCheckpoint('sam2.1_hiera_tiny', file, { baseUrl: srv.url });
        expect.fail('should throw');
      } catch (e) {
        expect((e as Sam2Error).code).to.equal('NETWORK');
        expect((e as Error).message).to.match(/answered the resume .* inconsistently .*Content-Range "bytes 1024-/);
      }
      expect(fs.existsSync(`${file}.part`)).to.equal(false);
      expect(fs.existsSync(file)).to.equal(false);
    } finally {
      srv.close();
    }
  });

  it('fails fast without network, saying how to download by hand and port', async () => {
    const t0 = Date.now();
    try {
      await downloadCheckpoint('sam2.1_hiera_tiny', path.join(tmp, 'd.pt'), {
        baseUrl: 'http://127.0.0.1:9',
        timeoutMs: 3000,
      });
      expect.fail('should throw');
    } catch (e) {
      expect((e as Sam2Error).code).to.equal('NETWORK');
      expect((e as Error).message).to.match(/Download it by hand .* then run: npx sam2-tfjs port/);
    }
    expect(Date.now() - t0).to.be.below(5000);
  });

  /** Runs the CLI (async: the server runs in this process); `bin` runs the built one, as npx does. */
  async function cliRun(args: string[], opts: { env?: Record<string, string>; cwd?: string; bin?: boolean } = {}) {
    const cli = opts.bin
      ? [path.join(root, 'dist', 'cjs', 'cli', 'main.js')]
      : ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts')];
    const child = spawn(process.execPath, [...cli, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, SAM2_TFJS_BACKEND: 'wasm', ...opts.env },
    });
    const r = { stdout: '', stderr: '', status: -1 };
    child.stdout.on('data', (d) => (r.stdout += d));
    child.stderr.on('data', (d) => (r.stderr += d));
    r.status = await new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
    return r;
  }

  it('the CLI downloads (and explains that a heads-only file cannot be ported)', async () => {
    const srv = await serve(body);
    try {
      const kept = path.join(tmp, 'kept.pt');
      const ok = await cliRun([
        'download',
        'sam2.1_hiera_tiny',
        '--checkpoint',
        kept,
        '--no-port',
        '--base-url',
        srv.url,
      ]);
      expect(ok.status, ok.stderr).to.equal(0);
      expect(fs.readFileSync(kept).equals(body)).to.equal(true);
      const file = path.join(tmp, 'cli.pt');
      const r = await cliRun(['download', 'sam2.1_hiera_tiny', '--checkpoint', file, '--out', path.join(tmp, 'w')], {
        env: { SAM2_TFJS_DOWNLOAD_BASE: srv.url },
      });
      expect(r.stdout).to.match(/downloaded /);
      expect(r.status).to.equal(1);
      expect(r.stderr.trim()).to.match(/^sam2-tfjs download: Not a SAM 2 checkpoint/);
    } finally {
      srv.close();
    }
  });

  it('the README quickstart: `segment --model <name>` downloads and ports the weights on first use', async () => {
    const ckpt = path.join(tmp, 'full.pt');
    writeFormulaCheckpoint(ckpt);
    const srv = await serve(fs.readFileSync(ckpt));
    fs.rmSync(ckpt);
    const project = path.join(tmp, 'project');
    fs.mkdirSync(project);
    const photo = fixturePath('amg_truck', 'input.png');
    // the README's command, at 256 px to keep the test short
    const args = [
      'segment',
      photo,
      '--model',
      'sam2.1_hiera_tiny',
      '--point',
      '200,150',
      '--out',
      'mask.png',
      '--overlay',
      'overlay.png',
      '--image-size',
      '256',
    ];
    try {
      const first = await cliRun(args, { cwd: project, bin: true, env: { SAM2_TFJS_DOWNLOAD_BASE: srv.url } });
      expect(first.status, first.stderr).to.equal(0);
      expect(first.stderr).to.match(
        /weights\/sam2\.1_hiera_tiny has no weights yet: downloading sam2\.1_hiera_tiny once/,
      );
      expect(first.stderr).to.match(/ported sam2\.1_hiera_tiny: 471 tensors/);
      expect(first.stdout).to.match(/score/);
      for (const f of ['weights/sam2.1_hiera_tiny/model.json', 'mask.png', 'overlay.png'])
        expect(fs.existsSync(path.join(project, f)), f).to.equal(true);
      const again = await cliRun(args, {
        cwd: project,
        bin: true,
        env: { SAM2_TFJS_DOWNLOAD_BASE: 'http://127.0.0.1:9' },
      });
      expect(again.status, again.stderr).to.equal(0);
      expect(again.stderr).to.not.match(/downloading/);
      expect(srv.state.requests).to.have.length(1);
    } finally {
      srv.close();
    }
  });
});
