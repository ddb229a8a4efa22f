/**
 * Regenerates src/io/expected_keys.json, the key/shape list of each official SAM 2.1
 * checkpoint size (from shared/fixtures/manifests.json, read off the real checkpoints). The
 * porter checks checkpoints against it; SAM 2.0 lists are derived (see io/port.ts).
 * Run: npx tsx scripts/gen_expected_keys.ts
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadManifest } from '../src/testing/manifest';

const out: Record<string, [string, number[]][]> = {};
for (const size of ['tiny', 'small', 'base_plus', 'large']) out[size] = loadManifest(`sam2.1_hiera_${size}`);
const file = path.join(__dirname, '..', 'src', 'io', 'expected_keys.json');
fs.writeFileSync(file, JSON.stringify(out));
console.log(`wrote ${file}`);
// SAM 1 (shared/fixtures/manifests_sam1.json): the official ViT-B/L/H checkpoints
const sam1: Record<string, [string, number[]][]> = {};
for (const size of ['vit_b', 'vit_l', 'vit_h']) sam1[size] = loadManifest(`sam_${size}`);
const file1 = path.join(__dirname, '..', 'src', 'io', 'expected_keys_sam1.json');
fs.writeFileSync(file1, JSON.stringify(sam1));
console.log(`wrote ${file1}`);
