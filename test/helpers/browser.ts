/**
 * Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by puppeteer-core
 * (which never downloads a browser), pages served from a loopback HTTP server (127.0.0.1 is a
 * secure context, which WebGPU needs). WebGL and WebGPU both run on SwiftShader here.
 */
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import type { Browser, Page } from 'puppeteer-core';

export const CHROMIUM = process.env.SAM2_CHROMIUM ?? '/usr/bin/chromium';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.css': 'text/css',
};

/** A static server: URL prefix -> folder. Only files under those folders are served. */
export async function serveFolders(mounts: Record<string, string>): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent((req.url ?? '/').split('?')[0]);
    for (const [prefix, dir] of Object.entries(mounts)) {
      if (!url.startsWith(prefix)) continue;
      const file = path.resolve(dir, '.' + url.slice(prefix.length - 1)) + (url.endsWith('/') ? '/index.html' : '');
      if (!file.startsWith(path.resolve(dir)) || !fs.existsSync(file) || !fs.statSync(file).isFile()) break;
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
      fs.createReadStream(file).pipe(res);
      return;
    }
    res.writeHead(404).end('not found');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

export function chromiumAvailable(): boolean {
  return fs.existsSync(CHROMIUM);
}

/** Launches Chromium headless; `webgpu` adds the SwiftShader WebGPU flags (WebGL works either way). */
export async function launchChromium(webgpu: boolean): Promise<Browser & { cleanup(): Promise<void> }> {
  const puppeteer = await import('puppeteer-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sam2-chromium-'));
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--user-data-dir=${profile}`,
    '--use-angle=swiftshader',
    '--enable-unsafe-swiftshader',
    ...(webgpu ? ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-webgpu-adapter=swiftshader'] : []),
  ];
  const browser = await puppeteer.default.launch({
    executablePath: CHROMIUM,
    headless: true,
    args,
    // a 1024 encode on SwiftShader (SAM2_BROWSER_FULL=1) can take over 30 min on a loaded machine
    protocolTimeout: process.env.SAM2_BROWSER_FULL === '1' ? 5_400_000 : 1_800_000,
  });
  return Object.assign(browser, {
    async cleanup() {
      await browser.close().catch(() => undefined);
      fs.rmSync(profile, { recursive: true, force: true });
    },
  });
}

/** Opens `url`, forwarding page errors and console errors to `log`, with no evaluate timeout. */
export async function openPage(browser: Browser, url: string, log: string[] = []): Promise<Page> {
  const page = await browser.newPage();
  page.setDefaultTimeout(0);
  page.on('pageerror', (e) => log.push(`pageerror: ${(e as Error).message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warn') log.push(`${m.type()}: ${m.text()}`);
  });
  await page.goto(url, { waitUntil: 'load' });
  return page;
}
