/** Downloads, ports and weights folders under races, servers that are down, and files placed by hand. */
import { expect } from 'chai';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import { pathToFileURL } from 'url';
import { expectSam2Error, fixturePath } from '../helpers';
import { downloadCheckpoint } from '../../src/io/download';
import { portCheckpoint } from '../../src/io/port';
import { readPortedWeights } from '../../src/io/ported';
import { Sam2Error } from '../../src/errors';

const root = path.join(__dirname, '..', '..');
// tsx by absolute URL: the CLI runs from other working directories
const tsx = pathToFileURL(require.resolve('tsx')).href;

/** A loopback server sending `body` in 8 spaced pieces (so two downloads overlap); counts requests. */
function slowServer(body: Buffer) {
  const state = { requests: 0 };
  const server = http.createServer((req, res) => {
    state.requests++;
    res.writeHead(200, { 'Content-Length': String(body.length) });
    const n = 8,
      size = Math.ceil(body.length / n);
    const send = (i: number): void => {
      if (i === n) return void res.end();
      res.write(body.subarray(i * size, (i + 1) * size));
      setTimeout(() => send(i + 1), 30);
    };
    send(0);
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

async function cliRun(args: string[], cwd: string, env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', tsx, path.join(root, 'src', 'cli', 'main.ts'), ...args], {
    cwd,
    env: { ...process.env, SAM2_TFJS_BACKEND: 'wasm', ...env },
  });
  const r = { stdout: '', stderr: '', status: -1 };
  child.stdout.on('data', (d) => (r.stdout += d));
  child.stderr.on('data', (d) => (r.stderr += d));
  r.status = await new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  return r;
}

describe('weights files: concurrent downloads, servers down, files placed by hand', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sam2-rio-'));
  const body = fs.readFileSync(fixturePath('ckpt/tiny_heads_formula.pt'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('two downloads of the same model at once both succeed, through private temporary files and an atomic rename', async () => {
    const srv = await slowServer(body);
    try {
      const dir = path.join(tmp, 'race');
      const file = path.join(dir, 'sam2.1_hiera_tiny.pt');
      const both = await Promise.all(
        [0, 1].map(() => downloadCheckpoint('sam2.1_hiera_tiny', file, { baseUrl: srv.url })),
      );
      expect(both).to.deep.equal([file, file]);
      expect(fs.readFileSync(file).equals(body)).to.equal(true);
      expect(fs.readdirSync(dir)).to.deep.equal(['sam2.1_hiera_tiny.pt']); // no temporary or partial files left
      // a complete file is not downloaded again
      await downloadCheckpoint('sam2.1_hiera_tiny', file, { baseUrl: 'http://127.0.0.1:9' });
      expect(srv.state.requests).to.equal(2);
    } finally {
      srv.close();
    }
  });

  it('a .pt placed by hand in weights/ is used by `download` and `segment --model <name>` (no download)', async () => {
    const project = path.join(tmp, 'project');
    fs.mkdirSync(path.join(project, 'weights'), { recursive: true });
    // a complete, valid checkpoint (the heads only, so porting stops with a clear error)
    fs.writeFileSync(path.join(project, 'weights', 'sam2.1_hiera_tiny.pt'), body);
    const env = { SAM2_TFJS_DOWNLOAD_BASE: 'http://127.0.0.1:9' };
    const d = await cliRun(['download', 'sam2.1_hiera_tiny'], project, env);
    expect(d.stdout).to.match(/using weights\/sam2\.1_hiera_tiny\.pt \(already downloaded\)/);
    expect(d.stderr.trim()).to.match(/^sam2-tfjs download: Not a SAM 2 checkpoint/);
    const s = await cliRun(
      [
        'segment',
        fixturePath('amg_truck', 'input.png'),
        '--model',
        'sam2.1_hiera_tiny',
        '--point',
        '1,1',
        '--out',
        'm.png',
      ],
      project,
      env,
    );
    expect(s.stderr).to.match(/has no weights yet: porting weights\/sam2\.1_hiera_tiny\.pt once/);
    expect(s.stderr).to.not.match(/Cannot download/);
    // SAM2_TFJS_WEIGHTS_DIR moves the folder model names live in
    const cache = path.join(tmp, 'cache');
    fs.mkdirSync(cache);
    fs.copyFileSync(path.join(project, 'weights', 'sam2.1_hiera_tiny.pt'), path.join(cache, 'sam2.1_hiera_tiny.pt'));
    const c = await cliRun(['download', 'sam2.1_hiera_tiny'], project, { ...env, SAM2_TFJS_WEIGHTS_DIR: cache });
    expect(c.stdout).to.contain(`using ${path.join(cache, 'sam2.1_hiera_tiny.pt')} (already downloaded)`);
  });

  it('port --out <an existing file> fails with one line, and a --model URL whose server is down is a NETWORK error', async () => {
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, 'x');
    expect(() => portCheckpoint(fixturePath('ckpt/tiny_heads_formula.pt'), file)).to.throw(
      Sam2Error,
      /a-file is a file, not a folder: give --out a folder/,
    );
    const r = await cliRun(['port', fixturePath('ckpt/tiny_heads_formula.pt'), '--out', file], tmp);
    expect(r.status).to.equal(1);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    // a port nothing listens on any more
    const srv = await slowServer(body);
    srv.close();
    await expectSam2Error(
      readPortedWeights(`${srv.url}/weights/sam2.1_hiera_tiny`),
      'NETWORK',
      /Cannot fetch http:.*\/weights\/sam2\.1_hiera_tiny\/model\.json \(ECONNREFUSED\): check the URL and that the server is up/,
    );
  });
});
