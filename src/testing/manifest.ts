/** The key/shape manifests of the official SAM 2.1 checkpoints, and formula state dicts from them. */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import { tfShape, toTfLayout } from '../io/layout';
import { Weights } from '../weights';
import { fixturePath } from './fixtures';
import { formulaWeight } from './formula';

export type Manifest = [string, number[]][];

/**
 * `[key, shape]` in file order for `sam2.1_hiera_tiny|small|base_plus|large`, or for the SAM 1
 * checkpoints `sam_vit_b_01ec64|sam_vit_l_0b3195|sam_vit_h_4b8939` (short names `sam_vit_b` etc.).
 */
export function loadManifest(name: string): Manifest {
  const file = name.startsWith('sam_vit_') ? 'manifests_sam1.json' : 'manifests.json';
  const all = JSON.parse(fs.readFileSync(fixturePath(file), 'utf8')) as Record<string, Manifest>;
  const m = all[name] ?? all[Object.keys(all).find((k) => k.startsWith(`${name}_`)) ?? ''];
  if (!m) throw new Error(`no manifest ${name}; have ${Object.keys(all).join(', ')}`);
  return m;
}

/**
 * The SAM 2.0 key set of a size, derived from the 2.1 manifest: 2.0 lacks the projected
 * pointer temporal encoding and the spatial no-object embedding.
 */
export function sam20Manifest(size: string): Manifest {
  return loadManifest(`sam2.1_hiera_${size}`).filter(
    ([k]) => !k.startsWith('obj_ptr_tpos_proj.') && k !== 'no_obj_embed_spatial',
  );
}

/** A formula-weight PyTorch state dict (C-order float32, PyTorch layout) for a manifest. */
export function* formulaStateDict(manifest: Manifest): Generator<[string, number[], Float32Array]> {
  for (const [key, shape] of manifest) yield [key, shape, formulaWeight(key, shape)];
}

/**
 * Formula weights for a manifest as a {@link Weights} in TF.js layout, converted by the same
 * layout rules the porter applies, so tests exercise the porting conversion too.
 */
export function formulaWeights(manifest: Manifest): Weights {
  const entries: [string, tf.Tensor][] = [];
  for (const [key, shape, data] of formulaStateDict(manifest)) {
    entries.push([key, tf.tensor(toTfLayout(key, shape, data), tfShape(key, shape), 'float32')]);
  }
  return new Weights(entries);
}
