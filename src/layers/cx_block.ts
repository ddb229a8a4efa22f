/**
 * ConvNeXt block of the memory fuser: depthwise 7x7 conv, LayerNorm, pointwise MLP with GELU,
 * layer scale `gamma`, residual. NHWC, so the pointwise convs are plain linears.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Layer, shapeList, tensorList, type Shape } from './base';
import { LayerNorm, Linear, gelu } from './common';

export class CXBlock extends Sam2Layer {
  static className = 'Sam2CXBlock';
  readonly norm: LayerNorm;
  readonly pwconv1: Linear;
  readonly pwconv2: Linear;
  private readonly dwWeight: tf.LayerVariable;
  private readonly dwBias: tf.LayerVariable;
  private readonly gamma: tf.LayerVariable;

  constructor(
    key: string,
    readonly dim: number,
    readonly kernel = 7,
  ) {
    super();
    this.remember<typeof CXBlock>(key, dim, kernel);
    this.dwWeight = this.param(`${key}.dwconv.weight`, [kernel, kernel, dim, 1]);
    this.dwBias = this.param(`${key}.dwconv.bias`, [dim]);
    this.norm = this.child(new LayerNorm(`${key}.norm`, dim, 1e-6));
    this.pwconv1 = this.child(new Linear(`${key}.pwconv1`, dim, 4 * dim));
    this.pwconv2 = this.child(new Linear(`${key}.pwconv2`, 4 * dim, dim));
    this.gamma = this.param(`${key}.gamma`, [dim]);
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const p = (this.kernel - 1) / 2;
      const y = tf.add(
        tf.depthwiseConv2d(
          tf.pad(x, [
            [0, 0],
            [p, p],
            [p, p],
            [0, 0],
          ]),
          this.dwWeight.read() as tf.Tensor4D,
          1,
          'valid',
        ),
        this.dwBias.read(),
      );
      const h = this.pwconv2.forward(gelu(this.pwconv1.forward(this.norm.forward(y))));
      return tf.add(x, tf.mul(h, this.gamma.read())) as tf.Tensor4D;
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(tensorList(inputs)[0] as tf.Tensor4D);
  }

  /** Residual block: [B, H, W, dim] in and out. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return shapeList(inputShape)[0];
  }
}
tf.serialization.registerClass(CXBlock);
