/**
 * `sam2-tfjs serve-example`: serves the browser example (examples/web), the browser bundle
 * (dist/browser) and a ported weights folder from one loopback HTTP server. 127.0.0.1 counts
 * as a secure context, which WebGPU needs.
 */
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';
import { Sam2Error } from '../errors';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
};

/** The package root (holds package.json, dist/ and examples/), from src/cli or dist/cjs/cli. */
export function packageRoot(from = __dirname): string {
  for (let dir = from; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'sam2-tfjs') return dir;
  }
  throw new Sam2Error('INPUT', 'Cannot find the sam2-tfjs package folder: reinstall sam2-tfjs.');
}

export interface ServeExampleOptions {
  /** Ported weights folder, served at /weights/. */
  weightsDir: string;
  /** An image served at /image (preloaded by the page). */
  image?: string;
  port?: number;
  host?: string;
}

/** Starts the server; resolves with its URL (the page to open) and a close function. */
export async function serveExample(opts: ServeExampleOptions): Promise<{ url: string; server: http.Server }> {
  const root = packageRoot();
  if (!fs.existsSync(path.join(root, 'dist', 'browser', 'sam2-tfjs.mjs'))) {
    throw new Sam2Error('INPUT', `${root}/dist/browser/sam2-tfjs.mjs is missing: run \`npm run build\` in ${root}.`);
  }
  if (!fs.existsSync(path.join(opts.weightsDir, 'model.json'))) {
    throw new Sam2Error(
      'WEIGHTS',
      `${opts.weightsDir} has no model.json: port a checkpoint there first (npx sam2-tfjs port <file.pt> --out ${opts.weightsDir}).`,
    );
  }
  const mounts: [string, string][] = [
    ['/dist/browser/', path.join(root, 'dist', 'browser')],
    ['/examples/web/', path.join(root, 'examples', 'web')],
    ['/weights/', path.resolve(opts.weightsDir)],
  ];
  const send = (res: http.ServerResponse, file: string) => {
    res.writeHead(200, { 'content-type': TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  };
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent((req.url ?? '/').split('?')[0]);
    if (url === '/') {
      const q = new URLSearchParams({ model: '/weights/model.json', ...(opts.image ? { image: '/image' } : {}) });
      return void res.writeHead(302, { location: `/examples/web/?${q}` }).end();
    }
    if (url === '/image' && opts.image) return send(res, opts.image);
    for (const [prefix, dir] of mounts) {
      if (!url.startsWith(prefix)) continue;
      const file = path.join(
        path.resolve(dir, '.' + url.slice(prefix.length - 1)),
        url.endsWith('/') ? 'index.html' : '',
      );
      if (file.startsWith(dir) && fs.existsSync(file) && fs.statSync(file).isFile()) return send(res, file);
    }
    res.writeHead(404).end('not found');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) =>
      reject(
        new Sam2Error('INPUT', `Cannot listen on ${opts.host ?? '127.0.0.1'}:${opts.port ?? 8080}: ${e.message}.`),
      ),
    );
    server.listen(opts.port ?? 8080, opts.host ?? '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://${opts.host ?? '127.0.0.1'}:${port}/`, server };
}
