// Builds dist/browser/sam2-tfjs.mjs: one self-contained ES module (tf.js with the webgpu, webgl,
// wasm and cpu backends inside) plus the tfjs-backend-wasm binaries beside it, so a page can
// `import` it with no bundler. Node-only modules are swapped for browser ones at their import
// sites (SUBSTITUTES); `fs`/`path` become stubs that throw (only disk paths reach them); any
// other Node built-in reached from src/ fails the build.
'use strict';
const esbuild = require('esbuild');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const src = path.join(root, 'src');
const outDir = path.join(root, 'dist', 'browser');

const SUBSTITUTES = {
  backend: 'browser/backend.ts',
  'predictor/image_input': 'browser/image_input.ts',
  'viz/masks': 'browser/masks.ts',
  'model/memory_attention_parallel': 'browser/memory_attention_parallel.ts',
  'onnx/graphs': 'browser/no_onnx.ts',
  'onnx/ort_executor': 'browser/no_onnx.ts',
};
// Node addons the code looks up at run time (and reports as missing when absent): left out.
const NODE_ONLY_PACKAGES = new Set(['onnxruntime-node']);
const STUBBED = new Set(['fs', 'path']);
const NODE_BUILTINS = new Set(require('module').builtinModules);

const substitute = {
  name: 'sam2-browser-substitutes',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      if (!args.importer.startsWith(src)) return undefined; // dependencies: their own browser fields
      const bare = args.path.replace(/^node:/, '');
      if (STUBBED.has(bare)) return { path: path.join(src, 'browser', 'node_stub.ts') };
      if (NODE_ONLY_PACKAGES.has(bare)) return { path: bare, external: true };
      if (NODE_BUILTINS.has(bare))
        return {
          errors: [
            {
              text: `Node built-in "${bare}" imported by ${path.relative(root, args.importer)} would end up in the browser build: substitute that module (scripts/build_browser.js)`,
            },
          ],
        };
      if (!args.path.startsWith('.')) return undefined;
      const target = path
        .relative(src, path.resolve(args.resolveDir, args.path))
        .replace(/\\/g, '/')
        .replace(/\.(ts|js)$/, '');
      const sub = SUBSTITUTES[target];
      if (sub && !args.importer.startsWith(path.join(src, 'browser', target.split('/').pop())))
        return { path: path.join(src, sub) };
      return undefined;
    });
  },
};

async function buildBrowser() {
  fs.rmSync(outDir, { recursive: true, force: true });
  const result = await esbuild.build({
    entryPoints: [path.join(src, 'browser', 'index.ts')],
    outfile: path.join(outDir, 'sam2-tfjs.mjs'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    legalComments: 'eof',
    // the wasm binaries are fetched from next to the bundle (src/browser/backend.ts)
    banner: { js: 'const __SAM2_BUNDLE_URL__ = import.meta.url;' },
    plugins: [substitute],
    logLevel: 'warning',
    metafile: true,
  });
  const wasmDist = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  for (const f of fs.readdirSync(wasmDist).filter((n) => n.endsWith('.wasm')))
    fs.copyFileSync(path.join(wasmDist, f), path.join(outDir, f));
  // what went in, for the test that keeps Node-only modules out
  fs.writeFileSync(
    path.join(root, 'dist', 'browser.meta.json'),
    JSON.stringify(Object.keys(result.metafile.inputs).sort(), null, 1),
  );
  const size = fs.statSync(path.join(outDir, 'sam2-tfjs.mjs')).size;
  console.log(`build: dist/browser/sam2-tfjs.mjs (${(size / 1e6).toFixed(1)} MB) + wasm binaries`);
}

module.exports = { buildBrowser };
if (require.main === module) {
  buildBrowser().catch((e) => {
    console.error(`build: browser bundle failed: ${e.message.split('\n')[0]}`);
    process.exit(1);
  });
}
