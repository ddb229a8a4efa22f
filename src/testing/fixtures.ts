/** Access to the golden reference outputs in shared/fixtures (see its README). */
import * as fs from 'fs';
import * as path from 'path';
import { readNpy, unpackMasks } from './npy';

/** Statistics the fixtures record for every tensor, over the whole (unsampled) tensor. */
export interface TensorStats {
  file: string;
  shape: number[];
  mean?: number;
  std?: number;
  min?: number;
  max?: number;
  absmean?: number;
  sampled_every?: number;
  area?: number[];
}

export interface FixtureCase {
  name: string;
  tensors: Record<string, TensorStats>;
  [field: string]: unknown;
}

/**
 * The fixture root: $SAM2_FIXTURES, else `../shared/fixtures` beside the repository
 * (where CI's clone and every checkout find it).
 */
export function fixturesRoot(): string {
  const candidates = [
    process.env.SAM2_FIXTURES,
    path.resolve(__dirname, '../../../shared/fixtures'), // from src/testing or dist/cjs/testing
    path.resolve(__dirname, '../../../../shared/fixtures'),
    path.resolve(process.cwd(), '../shared/fixtures'),
  ].filter((p): p is string => !!p);
  for (const c of candidates) {
    if (fs.existsSync(path.join(c, 'README.md'))) return c;
  }
  throw new Error(`fixtures not found; looked in ${candidates.join(', ')} (set SAM2_FIXTURES)`);
}

export function fixturePath(...parts: string[]): string {
  return path.join(fixturesRoot(), ...parts);
}

const caseCache = new Map<string, FixtureCase>();

export function loadCase(name: string): FixtureCase {
  let c = caseCache.get(name);
  if (!c) {
    c = JSON.parse(fs.readFileSync(fixturePath(name, 'case.json'), 'utf8')) as FixtureCase;
    caseCache.set(name, c);
  }
  return c;
}

/** A float tensor of a case with its statistics (data possibly sampled every 13th element). */
export function caseTensor(caseName: string, tensor: string): { data: Float32Array; stats: TensorStats } {
  const stats = loadCase(caseName).tensors[tensor];
  if (!stats) throw new Error(`fixture ${caseName} has no tensor ${tensor}`);
  const arr = readNpy(fixturePath(caseName, stats.file));
  const data = arr.data instanceof Float32Array ? arr.data : Float32Array.from(arr.data as Float64Array);
  return { data, stats };
}

/** The boolean masks of a case, one 0/1 Uint8Array per mask (shape [N, H, W] in stats). */
export function caseMasks(caseName: string, tensor: string): { masks: Uint8Array[]; h: number; w: number } {
  const stats = loadCase(caseName).tensors[tensor];
  if (!stats) throw new Error(`fixture ${caseName} has no tensor ${tensor}`);
  const [n, h, w] = stats.shape;
  const packed = readNpy(fixturePath(caseName, stats.file)).data as Uint8Array;
  return { masks: unpackMasks(packed, n, h, w), h, w };
}
