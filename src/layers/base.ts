/**
 * Base class of our custom tf.layers layers. Parameters are layer weights named after the
 * PyTorch state-dict keys they load from, so `getWeights()`/`countParams()` work as in any
 * tf.layers layer and `loadFrom(weights)` fills them from a ported checkpoint by key.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Error } from '../errors';
import type { Weights } from '../weights';

/** Weights that parameters declared inside {@link buildWithWeights} start from. */
let initialWeights: Weights | undefined;

/**
 * Builds layers whose parameters start as references to `weights` (same shape required)
 * instead of zero-filled tensors, so building and loading a model needs the weights' memory
 * once, not twice: ViT-H's 2.5 GB would not fit the 4 GB wasm heap twice.
 */
export function buildWithWeights<T>(weights: Weights, build: () => T): T {
  const previous = initialWeights;
  initialWeights = weights;
  try {
    return build();
  } finally {
    initialWeights = previous;
  }
}

/** A tf.layers shape: null for sizes unknown until run time (the batch of a symbolic input). */
export type Shape = (number | null)[];

/** The inputs of `call` as a list (tf.layers passes a lone tensor for a single input). */
export function tensorList(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
  return Array.isArray(inputs) ? inputs : [inputs];
}

/** The input shapes of `computeOutputShape` as a list (one input comes as a bare shape). */
export function shapeList(inputShape: Shape | Shape[]): Shape[] {
  const many = inputShape.length > 0 && (inputShape as unknown[]).every((d) => Array.isArray(d));
  return many ? (inputShape as Shape[]) : [inputShape as Shape];
}

export abstract class Sam2Layer extends tf.layers.Layer {
  /** key -> variable, in creation order. */
  private readonly params = new Map<string, tf.LayerVariable>();
  private readonly children: Sam2Layer[] = [];
  /** The constructor's arguments (JSON data), so getConfig can hand them to fromConfig. */
  private ctorArgs: unknown[] = [];

  constructor(name?: string) {
    super({ name, trainable: false });
    this.built = true; // parameters are created eagerly in the subclass constructors
  }

  /**
   * Records the subclass constructor's arguments, in order (each constructor calls it once,
   * naming its own class, so the arguments are type-checked against that constructor).
   */
  protected remember<C extends abstract new (...args: never[]) => Sam2Layer>(...args: ConstructorParameters<C>): void {
    this.ctorArgs = args;
  }

  /** Declares a parameter loaded from PyTorch key `key` with TF-layout `shape`. */
  protected param(key: string, shape: number[]): tf.LayerVariable {
    const src = initialWeights?.has(key) ? initialWeights.get(key) : undefined;
    const same = src && src.shape.length === shape.length && src.shape.every((d, i) => d === shape[i]);
    // addWeight disposes what the initializer returns: a reshape shares the data without
    // consuming it (a clone would copy it on wasm)
    const zeros = tf.initializers.zeros();
    const init = same ? ({ apply: () => tf.reshape(src, src.shape) } as unknown as typeof zeros) : zeros;
    const v = this.addWeight(key, shape, 'float32', init, undefined, false);
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

  /** Frees parameters of this layer and its children. */
  disposeAll(): void {
    for (const c of this.children) c.disposeAll();
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
    this.disposeDerived();
  }

  /** Hook to free tensors made in onWeightsLoaded. */
  protected disposeDerived(): void {}

  /** tf.layers config: the base fields plus `args`, the constructor's arguments. */
  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), args: this.ctorArgs as tf.serialization.ConfigDictArray };
  }

  /** Rebuilds a layer from its getConfig() (parameters start at zero: load weights afterwards). */
  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    if (!Array.isArray(config.args)) {
      throw new Sam2Error(
        'CONFIG',
        `${cls.className} config has no "args" array: it was not made by Sam2Layer.getConfig().`,
      );
    }
    const layer = new cls(...config.args);
    if (typeof config.name === 'string' && layer instanceof Sam2Layer) layer.name = config.name;
    return layer;
  }
}
