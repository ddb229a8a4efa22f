/**
 * Base class of our custom tf.layers layers. Parameters are layer weights named after the
 * PyTorch state-dict keys they load from, so `getWeights()`/`countParams()` work as in any
 * tf.layers layer and `loadFrom(weights)` fills them from a ported checkpoint by key.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Error } from '../errors';
import type { Weights } from '../weights';

export abstract class Sam2Layer extends tf.layers.Layer {
  /** key -> variable, in creation order. */
  private readonly params = new Map<string, tf.LayerVariable>();
  private readonly children: Sam2Layer[] = [];

  constructor(name?: string) {
    super({ name, trainable: false });
    this.built = true; // parameters are created eagerly in the subclass constructors
  }

  /** Declares a parameter loaded from PyTorch key `key` with TF-layout `shape`. */
  protected param(key: string, shape: number[]): tf.LayerVariable {
    const v = this.addWeight(key, shape, 'float32', tf.initializers.zeros(), undefined, false);
    this.params.set(key, v);
    return v;
  }

  /** Registers a sub-layer so loading and disposal reach it. */
  protected child<T extends Sam2Layer>(layer: T): T {
    this.children.push(layer);
    return layer;
  }

  /** Own and children's parameters, so countParams()/getWeights() cover the whole tree. */
  override get nonTrainableWeights(): tf.LayerVariable[] {
    return [...this.params.values(), ...this.children.flatMap((c) => c.nonTrainableWeights)];
  }

  override get trainableWeights(): tf.LayerVariable[] {
    return [];
  }

  /** Keys of every parameter of this layer and its children. */
  paramKeys(): string[] {
    return [...this.params.keys(), ...this.children.flatMap((c) => c.paramKeys())];
  }

  /** Copies every parameter from `weights`, checking shapes; recursive over children. */
  loadFrom(weights: Weights): void {
    for (const [key, v] of this.params) v.write(weights.get(key, v.shape as number[]));
    for (const c of this.children) c.loadFrom(weights);
    this.onWeightsLoaded();
  }

  /** Hook for layers that derive tensors from their weights once (e.g. split qkv). */
  protected onWeightsLoaded(): void {}

  /** Reads a parameter's current value. */
  protected w(v: tf.LayerVariable): tf.Tensor {
    return v.read();
  }

  /** Frees parameters of this layer and its children. */
  disposeAll(): void {
    for (const c of this.children) c.disposeAll();
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
    this.disposeDerived();
  }

  /** Hook to free tensors made in onWeightsLoaded. */
  protected disposeDerived(): void {}

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig() };
  }
}

/** Throws a WEIGHTS error when `actual` differs from `expected` (used by model assembly). */
export function expectShape(what: string, actual: readonly number[], expected: readonly number[]): void {
  if (actual.length !== expected.length || actual.some((d, i) => d !== expected[i])) {
    throw new Sam2Error('INPUT', `${what} has shape [${actual}], expected [${expected}].`);
  }
}
