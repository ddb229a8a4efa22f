/** Small building blocks shared by every component: Linear, LayerNorm, Conv2d, MLP, GELU. */
import * as tf from '@tensorflow/tfjs';
import { GELU_KERNEL } from '../ops/gelu';
import { LAYER_NORM_KERNEL } from '../ops/simd';
import { simdKernelsActive } from '../wasm_kernels';
import { Sam2Layer, shapeList, type Shape } from './base';

/**
 * Exact (erf) GELU, as PyTorch's nn.GELU() default: one pass on wasm (src/ops/gelu.ts), tf ops
 * on other backends.
 */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (x.dtype === 'float32' && tf.getKernel(GELU_KERNEL, tf.getBackend()))
    return tf.engine().runKernel(GELU_KERNEL, { x }) as tf.Tensor;
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)));
}

/**
 * Rows per softmax kernel on WebGPU: tfjs-backend-webgpu 4.22 gets the last rows of a softmax
 * over more than 65536 rows wrong (e.g. [131072, 9]: row 131071 off by 0.7; 65536 rows exact).
 */
const WEBGPU_SOFTMAX_ROWS = 65536;

/** tf.softmax over the last axis, in row chunks on WebGPU (see WEBGPU_SOFTMAX_ROWS). */
export function softmax<T extends tf.Tensor>(x: T): T {
  const last = x.shape[x.rank - 1];
  const rows = last > 0 ? x.size / last : 0;
  if (rows <= WEBGPU_SOFTMAX_ROWS || tf.getBackend() !== 'webgpu') return tf.softmax(x);
  return tf.tidy(() => {
    const flat = tf.reshape(x, [rows, last]);
    const parts: tf.Tensor[] = [];
    for (let r = 0; r < rows; r += WEBGPU_SOFTMAX_ROWS)
      parts.push(tf.softmax(tf.slice(flat, [r, 0], [Math.min(WEBGPU_SOFTMAX_ROWS, rows - r), last])));
    return tf.reshape(tf.concat(parts, 0), x.shape) as T;
  });
}

export type Activation = 'relu' | 'gelu';

export function activate(x: tf.Tensor, act: Activation): tf.Tensor {
  return act === 'relu' ? tf.relu(x) : gelu(x);
}

/** nn.Linear over the last axis. Weight stored (in, out). */
export class Linear extends Sam2Layer {
  static className = 'Sam2Linear';
  readonly weight: tf.LayerVariable;
  readonly bias?: tf.LayerVariable;
  constructor(
    readonly key: string,
    readonly inDim: number,
    readonly outDim: number,
    bias = true,
  ) {
    super();
    this.remember<typeof Linear>(key, inDim, outDim, bias);
    this.weight = this.param(`${key}.weight`, [inDim, outDim]);
    if (bias) this.bias = this.param(`${key}.bias`, [outDim]);
  }

  /** x: [..., inDim] -> [..., outDim], with an optional fused activation. */
  forward(x: tf.Tensor, activation?: 'relu'): tf.Tensor {
    return tf.tidy(() => {
      const shape = x.shape;
      const x2 = x.rank === 2 ? (x as tf.Tensor2D) : (tf.reshape(x, [-1, this.inDim]) as tf.Tensor2D);
      // tf.fused.matMul keeps the bias add (and relu) inside one wasm kernel
      const y = tf.fused.matMul({
        a: x2,
        b: this.weight.read() as tf.Tensor2D,
        bias: this.bias?.read(),
        activation: activation ?? 'linear',
      });
      return x.rank === 2 ? y : tf.reshape(y, [...shape.slice(0, -1), this.outDim]);
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0] : inputs);
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return [...shapeList(inputShape)[0].slice(0, -1), this.outDim];
  }
}
tf.serialization.registerClass(Linear);

/** LayerNorm over the last axis (channels in NHWC, so it is also LayerNorm2d). */
export class LayerNorm extends Sam2Layer {
  static className = 'Sam2LayerNorm';
  readonly weight: tf.LayerVariable;
  readonly bias: tf.LayerVariable;
  constructor(
    readonly key: string,
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.remember<typeof LayerNorm>(key, dim, eps);
    this.weight = this.param(`${key}.weight`, [dim]);
    this.bias = this.param(`${key}.bias`, [dim]);
  }

  forward(x: tf.Tensor): tf.Tensor {
    if (x.dtype === 'float32' && this.dim % 4 === 0 && x.shape[x.shape.length - 1] === this.dim && simdKernelsActive())
      return tf.engine().runKernel(LAYER_NORM_KERNEL, { x, gamma: this.weight.read(), beta: this.bias.read() }, {
        eps: this.eps,
      } as unknown as tf.NamedAttrMap) as tf.Tensor;
    return tf.tidy(() => {
      const mean = tf.mean(x, -1, true);
      const centered = tf.sub(x, mean);
      const variance = tf.mean(tf.square(centered), -1, true);
      const inv = tf.rsqrt(tf.add(variance, this.eps));
      return tf.add(tf.mul(tf.mul(centered, inv), this.weight.read()), this.bias.read());
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0] : inputs);
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return shapeList(inputShape)[0];
  }
}
tf.serialization.registerClass(LayerNorm);

export interface Conv2dOptions {
  kernel: number;
  stride?: number;
  /** Symmetric zero padding in pixels (PyTorch's `padding`). */
  padding?: number;
  bias?: boolean;
}

/** nn.Conv2d on NHWC input. Weight stored HWIO. */
export class Conv2d extends Sam2Layer {
  static className = 'Sam2Conv2d';
  readonly weight: tf.LayerVariable;
  readonly bias?: tf.LayerVariable;
  readonly stride: number;
  readonly padding: number;
  constructor(
    readonly key: string,
    readonly inDim: number,
    readonly outDim: number,
    opts: Conv2dOptions,
  ) {
    super();
    this.remember<typeof Conv2d>(key, inDim, outDim, opts);
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    this.weight = this.param(`${key}.weight`, [opts.kernel, opts.kernel, inDim, outDim]);
    if (opts.bias ?? true) this.bias = this.param(`${key}.bias`, [outDim]);
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const p = this.padding;
      const pad: [[number, number], [number, number], [number, number], [number, number]] | 'valid' =
        p > 0
          ? [
              [0, 0],
              [p, p],
              [p, p],
              [0, 0],
            ]
          : 'valid';
      return tf.fused.conv2d({
        x,
        filter: this.weight.read() as tf.Tensor4D,
        strides: this.stride,
        pad,
        bias: this.bias?.read(),
      });
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D);
  }

  /** [B, H, W, inDim] -> [B, H', W', outDim], H' = floor((H + 2 padding - kernel) / stride) + 1. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const [b, h, w] = shapeList(inputShape)[0];
    const k = this.weight.shape[0] as number;
    const out = (n: number | null) => (n === null ? null : Math.floor((n + 2 * this.padding - k) / this.stride) + 1);
    return [b, out(h), out(w), this.outDim];
  }
}
tf.serialization.registerClass(Conv2d);

/** The reference's MLP: `numLayers` linears with an activation between them. */
export class Mlp extends Sam2Layer {
  static className = 'Sam2Mlp';
  readonly layers: Linear[];
  constructor(
    readonly key: string,
    inDim: number,
    hiddenDim: number,
    outDim: number,
    numLayers: number,
    readonly activation: Activation = 'relu',
    readonly sigmoidOutput = false,
    /** Key of each linear under `key` (default `layers.<i>`; SAM 1's MLPBlock uses lin1, lin2). */
    layerNames?: string[],
  ) {
    super();
    this.remember<typeof Mlp>(key, inDim, hiddenDim, outDim, numLayers, activation, sigmoidOutput, layerNames);
    const dims = [inDim, ...new Array<number>(numLayers - 1).fill(hiddenDim), outDim];
    this.layers = dims
      .slice(0, -1)
      .map((d, i) => this.child(new Linear(`${key}.${layerNames?.[i] ?? `layers.${i}`}`, d, dims[i + 1])));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = x;
      this.layers.forEach((l, i) => {
        const last = i === this.layers.length - 1;
        if (last) h = l.forward(h);
        else h = this.activation === 'relu' ? l.forward(h, 'relu') : gelu(l.forward(h));
      });
      return this.sigmoidOutput ? tf.sigmoid(h) : h;
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0] : inputs);
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return this.layers[this.layers.length - 1].computeOutputShape(inputShape);
  }
}
tf.serialization.registerClass(Mlp);
