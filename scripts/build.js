// Builds the CommonJS output with tsc, then writes a thin ESM entry that re-exports it.
// One compiled copy serves both `require` (tslab notebooks) and `import`, so the two
// module systems never hold two different tf.js instances. Then the self-contained browser
// bundle (scripts/build_browser.js).
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
try {
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.json')], {
    stdio: 'inherit',
  });
} catch {
  console.error('build: tsc reported errors (above)');
  process.exit(1);
}
// One ESM wrapper per public entry point (package.json "exports").
const esmDir = path.join(root, 'dist/esm');
fs.mkdirSync(esmDir, { recursive: true });
const counts = [];
for (const entry of ['index', 'internals']) {
  const cjs = require(path.join(root, `dist/cjs/${entry}.js`));
  const names = Object.keys(cjs).filter((n) => n !== 'default' && n !== '__esModule');
  const lines = [
    `import cjs from '../cjs/${entry}.js';`,
    ...names.map((n) => `export const ${n} = cjs.${n};`),
    'export default cjs;',
    '',
  ];
  fs.writeFileSync(path.join(esmDir, `${entry}.mjs`), lines.join('\n'));
  fs.writeFileSync(path.join(esmDir, `${entry}.d.mts`), `export * from '../cjs/${entry}.js';\n`);
  counts.push(`${entry} ${names.length}`);
}
console.log(`build: dist/cjs + dist/esm (exports: ${counts.join(', ')})`);
require('./build_browser')
  .buildBrowser()
  .catch((e) => {
    console.error(`build: browser bundle failed: ${e.message.split('\n')[0]}`);
    process.exit(1);
  });
