// Makes `import ... from 'sam2-tfjs'` in examples/notebooks resolve to this checkout (as it
// does in a user's project after `npm install sam2-tfjs`): tslab resolves modules like Node
// from the notebook's folder, and a package cannot import itself by name under TypeScript's
// node10 resolution, which tslab uses.
const fs = require('fs');
const path = require('path');

const modules = path.join(__dirname, '..', 'examples', 'notebooks', 'node_modules');
const link = path.join(modules, 'sam2-tfjs');
fs.mkdirSync(modules, { recursive: true });
fs.rmSync(link, { force: true });
fs.symlinkSync(path.join('..', '..', '..'), link, 'dir');
console.log(`linked ${path.relative(process.cwd(), link)} -> ${fs.realpathSync(link)}`);
