/** Named weights in TF.js layout (see io/layout.ts), keyed by their PyTorch state-dict key. */
import * as tf from '@tensorflow/tfjs';
import { Sam2Error } from './errors';

export class Weights {
  private readonly map: Map<string, tf.Tensor>;

  constructor(entries: Iterable<[string, tf.Tensor]>) {
    this.map = new Map(entries);
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  keys(): string[] {
    return [...this.map.keys()];
  }

  /** The tensor stored under `key`; with `shape`, also checks its (TF-layout) shape. */
  get(key: string, shape?: readonly number[]): tf.Tensor {
    const t = this.map.get(key);
    if (!t) throw new Sam2Error('WEIGHTS', `Missing weight "${key}": the weights do not match the model config.`);
    if (shape && (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))) {
      throw new Sam2Error('WEIGHTS', `Weight "${key}" has shape [${t.shape}] but the model config expects [${shape}].`);
    }
    return t;
  }

  /**
   * Checks that these weights hold exactly the keys `wanted` (a model's parameters): a WEIGHTS
   * error naming the first missing and unexpected ones otherwise.
   */
  checkKeys(wanted: Iterable<string>, modelName: string): void {
    const want = new Set(wanted);
    const unexpected = this.keys().filter((k) => !want.has(k));
    const missing = [...want].filter((k) => !this.has(k));
    if (!missing.length && !unexpected.length) return;
    const few = (xs: string[]) => xs.slice(0, 5).join(', ') + (xs.length > 5 ? ', ...' : '');
    const parts = [
      missing.length ? `${missing.length} missing (${few(missing)})` : '',
      unexpected.length ? `${unexpected.length} unexpected (${few(unexpected)})` : '',
    ];
    throw new Sam2Error(
      'WEIGHTS',
      `Weights do not match ${modelName}: ${parts.filter(Boolean).join(', ')}. Was the checkpoint ported for another model?`,
    );
  }

  /** Frees every tensor. */
  dispose(): void {
    for (const t of this.map.values()) t.dispose();
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}
