import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { serveExample } from '../../src/cli/serve_example';
import { expectSam2Error } from '../helpers';

describe('sam2-tfjs serve-example', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sam2-serve-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('serves the example page, the browser bundle and the weights folder on loopback', async function () {
    if (!fs.existsSync(path.join(__dirname, '..', '..', 'dist', 'browser', 'sam2-tfjs.mjs'))) return this.skip(); // npm run build first
    fs.writeFileSync(path.join(tmp, 'model.json'), '{}');
    fs.writeFileSync(path.join(tmp, 'photo.png'), 'png');
    const { url, server } = await serveExample({ weightsDir: tmp, image: path.join(tmp, 'photo.png'), port: 0 });
    try {
      expect(url).to.match(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const root = await fetch(url, { redirect: 'manual' });
      expect(root.status).to.equal(302);
      expect(root.headers.get('location')).to.equal('/examples/web/?model=%2Fweights%2Fmodel.json&image=%2Fimage');
      const page = await fetch(new URL('/examples/web/', url));
      expect(await page.text()).to.contain('<script type="module" src="./app.js">');
      const bundle = await fetch(new URL('/dist/browser/sam2-tfjs.mjs', url));
      expect([bundle.status, bundle.headers.get('content-type')]).to.deep.equal([200, 'text/javascript']);
      await bundle.arrayBuffer();
      const wasm = await fetch(new URL('/dist/browser/tfjs-backend-wasm-simd.wasm', url));
      expect(wasm.headers.get('content-type')).to.equal('application/wasm');
      await wasm.arrayBuffer();
      expect(await (await fetch(new URL('/weights/model.json', url))).text()).to.equal('{}');
      expect(await (await fetch(new URL('/image', url))).text()).to.equal('png');
      expect((await fetch(new URL('/weights/../../etc/passwd', url))).status).to.equal(404);
      expect((await fetch(new URL('/src/index.ts', url))).status).to.equal(404);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('says what to do when the weights folder has no model.json', async () => {
    await expectSam2Error(
      serveExample({ weightsDir: path.join(tmp, 'none'), port: 0 }),
      'WEIGHTS',
      /has no model\.json: port a checkpoint there first/,
    );
  });
});
