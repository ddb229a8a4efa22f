/**
 * Formula weights: every state-dict tensor filled from its key and shape alone, as the
 * reference fixtures were made (recipe in shared/fixtures/README.md). They exercise every
 * parameter of the real architecture at its real size without trained checkpoints.
 */

/** FNV-1a (32-bit) of the key's UTF-8 bytes. */
export function fnv1a32(key: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(key, 'utf8')) {
    h = Math.imul(h ^ b, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

const POS_LEAVES = new Set([
  'pos_embed',
  'pos_embed_window',
  'no_mem_embed',
  'no_mem_pos_enc',
  'no_obj_ptr',
  'no_obj_embed_spatial',
  'maskmem_tpos_enc',
]);

/** Maps x in [-1, 1) to the parameter value, by the first rule of the recipe that applies. */
function valueRule(key: string, shape: readonly number[]): (x: number) => number {
  const leaf = key.slice(key.lastIndexOf('.') + 1);
  if (key.endsWith('pred_obj_score_head.layers.2.bias')) return (x) => 2.0 + 0.1 * x;
  if (leaf === 'gamma') return (x) => 0.5 + 0.25 * x;
  if (leaf === 'positional_encoding_gaussian_matrix') return (x) => Math.sqrt(3) * x;
  if (POS_LEAVES.has(leaf)) return (x) => 0.5 * x;
  if (shape.length === 1 && leaf === 'weight') return (x) => 1 + 0.2 * x;
  if (shape.length === 1 && leaf === 'bias') return (x) => 0.1 * x;
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  const s = Math.sqrt(3 / fanIn);
  return (x) => s * x;
}

/** The exact float32 values of the formula tensor for `key` with `shape` (C order). */
export function formulaWeight(key: string, shape: readonly number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const base = fnv1a32(key);
  const rule = valueRule(key, shape);
  for (let i = 0; i < n; i++) {
    let h = (Math.imul(i, 0x9e3779b1) + base) >>> 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
    const u = (h >>> 8) / 16777216;
    out[i] = rule(2 * u - 1); // computed in float64, rounded once to float32 on store
  }
  return out;
}
