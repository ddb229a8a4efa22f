/**
 * The prompt encoder: points and box corners become sparse tokens (random-Fourier encoding of
 * pixel centres plus a learned embedding per label), a low-resolution mask becomes a dense
 * embedding (or the learned no-mask embedding is broadcast), and getDensePe() gives the
 * encoding of the image-embedding grid that the mask decoder uses.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Error } from '../errors';
import { Sam2Layer, shapeList, tensorList, type Shape } from '../layers/base';
import { Conv2d, LayerNorm, gelu } from '../layers/common';
import { randomFourierEncoding } from '../layers/position_encoding';
import type { Sam2Config } from '../config';

/** Key prefix of SAM 2 checkpoints (SAM 1's is `prompt_encoder`). */
const SAM2_PREFIX = 'sam_prompt_encoder';

/** Point labels: 1 foreground, 0 background, 2/3 box corners, -1 padding. */
export interface PointPrompt {
  /** [B, N, 2] (x, y) in pixels of the model input (0..imageSize). */
  coords: tf.Tensor3D;
  /** [B, N] labels as float32 or int32. */
  labels: tf.Tensor2D;
}

export interface PromptEmbeddings {
  /** [B, N, 256] point/box tokens. */
  sparse: tf.Tensor3D;
  /** [B, S/16, S/16, 256]. */
  dense: tf.Tensor4D;
}

export class PromptEncoder extends Sam2Layer {
  static className = 'Sam2PromptEncoder';
  readonly embedDim = 256;
  readonly embeddingSize: number;
  private readonly gaussian: tf.LayerVariable;
  private readonly pointEmbeddings: tf.LayerVariable[];
  private readonly notAPointEmbed: tf.LayerVariable;
  private readonly noMaskEmbed: tf.LayerVariable;
  readonly maskConvs: Conv2d[];
  readonly maskNorms: LayerNorm[];
  private labelTable?: tf.Tensor2D;
  private densePe?: tf.Tensor4D;

  /** `prefix`: the state-dict prefix (`prompt_encoder` for SAM 1, whose maths is the same). */
  constructor(
    readonly config: Pick<Sam2Config, 'imageSize' | 'backboneStride'>,
    prefix = SAM2_PREFIX,
  ) {
    super();
    this.remember<typeof PromptEncoder>(config, prefix);
    const P = prefix;
    const d = this.embedDim;
    this.embeddingSize = config.imageSize / config.backboneStride;
    this.gaussian = this.param(`${P}.pe_layer.positional_encoding_gaussian_matrix`, [2, d / 2]);
    this.pointEmbeddings = [0, 1, 2, 3].map((i) => this.param(`${P}.point_embeddings.${i}.weight`, [1, d]));
    this.notAPointEmbed = this.param(`${P}.not_a_point_embed.weight`, [1, d]);
    this.maskConvs = [
      this.child(new Conv2d(`${P}.mask_downscaling.0`, 1, 4, { kernel: 2, stride: 2 })),
      this.child(new Conv2d(`${P}.mask_downscaling.3`, 4, 16, { kernel: 2, stride: 2 })),
      this.child(new Conv2d(`${P}.mask_downscaling.6`, 16, d, { kernel: 1 })),
    ];
    this.maskNorms = [
      this.child(new LayerNorm(`${P}.mask_downscaling.1`, 4, 1e-6)),
      this.child(new LayerNorm(`${P}.mask_downscaling.4`, 16, 1e-6)),
    ];
    this.noMaskEmbed = this.param(`${P}.no_mask_embed.weight`, [1, d]);
  }

  /** Side of the low-resolution mask prompts (4x the embedding grid: 256 at 1024 px). */
  get maskInputSize(): number {
    return 4 * this.embeddingSize;
  }

  protected override onWeightsLoaded(): void {
    this.disposeDerived();
    // rows: label -1 (padding), 0, 1, 2, 3 -> one matMul of one-hot labels adds the right one
    this.labelTable = tf.keep(
      tf.concat([this.notAPointEmbed.read(), ...this.pointEmbeddings.map((p) => p.read())], 0) as tf.Tensor2D,
    );
    const s = this.embeddingSize;
    this.densePe = tf.tidy(() => {
      const c = (tf.range(0, s, 1, 'float32').add(0.5) as tf.Tensor1D).div(s);
      const xs = tf.tile(tf.reshape(c, [1, s, 1]), [s, 1, 1]);
      const ys = tf.tile(tf.reshape(c, [s, 1, 1]), [1, s, 1]);
      const grid = tf.concat([xs, ys], -1);
      return tf.keep(
        tf.reshape(randomFourierEncoding(grid, this.gaussian.read() as tf.Tensor2D), [1, s, s, -1]) as tf.Tensor4D,
      );
    });
  }

  protected override disposeDerived(): void {
    this.labelTable?.dispose();
    this.densePe?.dispose();
    this.labelTable = this.densePe = undefined;
  }

  /** Encoding of the image-embedding grid [1, S/16, S/16, 256] (owned by the encoder: do not dispose). */
  getDensePe(): tf.Tensor4D {
    return this.densePe as tf.Tensor4D;
  }

  private embedPoints(points: PointPrompt, pad: boolean): tf.Tensor3D {
    return tf.tidy(() => {
      let coords = tf.add(points.coords, 0.5) as tf.Tensor3D; // pixel centres
      let labels = tf.cast(points.labels, 'int32') as tf.Tensor2D;
      const b = coords.shape[0];
      if (pad) {
        coords = tf.concat([coords, tf.zeros([b, 1, 2])], 1);
        labels = tf.concat([labels, tf.fill([b, 1], -1, 'int32') as tf.Tensor2D], 1);
      }
      const pe = randomFourierEncoding(tf.div(coords, this.config.imageSize), this.gaussian.read() as tf.Tensor2D);
      const isPoint = tf.expandDims(tf.cast(tf.notEqual(labels, -1), 'float32'), -1);
      const oneHot = tf.oneHot(tf.add(labels, tf.scalar(1, 'int32')) as tf.Tensor2D, 5);
      const n = labels.shape[1];
      const labelEmb = tf.reshape(tf.matMul(tf.reshape(oneHot, [b * n, 5]), this.labelTable as tf.Tensor2D), [
        b,
        n,
        -1,
      ]);
      return tf.add(tf.mul(pe, isPoint), labelEmb) as tf.Tensor3D;
    });
  }

  private embedBoxes(boxes: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const b = boxes.shape[0];
      const corners = tf.reshape(tf.add(boxes, 0.5), [b, 2, 2]);
      const pe = randomFourierEncoding(tf.div(corners, this.config.imageSize), this.gaussian.read() as tf.Tensor2D);
      const cornerEmb = tf.concat([this.pointEmbeddings[2].read(), this.pointEmbeddings[3].read()], 0);
      return tf.add(pe, cornerEmb) as tf.Tensor3D;
    });
  }

  /** masks [B, 4s, 4s, 1] logits -> [B, s, s, 256]. */
  embedMasks(masks: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [c0, c1, c2] = this.maskConvs;
      const [n0, n1] = this.maskNorms;
      let x = gelu(n0.forward(c0.forward(masks))) as tf.Tensor4D;
      x = gelu(n1.forward(c1.forward(x))) as tf.Tensor4D;
      return c2.forward(x);
    });
  }

  /**
   * Embeds prompts as the reference does. Points are padded with one "not a point" token when
   * no boxes are given (the image predictor always passes boxes as labelled corner points).
   */
  forward(prompts: { points?: PointPrompt; boxes?: tf.Tensor2D; masks?: tf.Tensor4D }): PromptEmbeddings {
    return tf.tidy(() => {
      const { points, boxes, masks } = prompts;
      const b = points ? points.coords.shape[0] : boxes ? boxes.shape[0] : masks ? masks.shape[0] : 1;
      const parts: tf.Tensor3D[] = [];
      if (points) parts.push(this.embedPoints(points, !boxes));
      if (boxes) parts.push(this.embedBoxes(boxes));
      const sparse = parts.length
        ? (tf.concat(parts, 1) as tf.Tensor3D)
        : (tf.zeros([b, 0, this.embedDim]) as tf.Tensor3D);
      const s = this.embeddingSize;
      const dense = masks
        ? this.embedMasks(masks)
        : (tf.add(tf.zeros([b, s, s, 1]), tf.reshape(this.noMaskEmbed.read(), [1, 1, 1, -1])) as tf.Tensor4D);
      return { sparse, dense };
    });
  }

  /**
   * tf.layers entry: inputs are any of point coords [B, N, 2] with their labels [B, N], boxes
   * [B, 4], masks [B, 4s, 4s, 1], in that order, told apart by rank (3: coords, the labels
   * follow; 2: boxes; 4: masks). Returns [sparse, dense].
   */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    const { points, boxes, masks } = PromptEncoder.sortPrompts(tensorList(inputs));
    const { sparse, dense } = this.forward({
      points: points && { coords: points[0] as tf.Tensor3D, labels: points[1] as tf.Tensor2D },
      boxes: boxes as tf.Tensor2D | undefined,
      masks: masks as tf.Tensor4D | undefined,
    });
    return [sparse, dense];
  }

  /** [sparse [B, N (+1 padding without boxes) + 2 per box, 256], dense [B, s, s, 256]]. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape[] {
    const { points, boxes, masks } = PromptEncoder.sortPrompts(shapeList(inputShape));
    const b = points ? points[0][0] : boxes ? boxes[0] : masks ? masks[0] : 1;
    const n = points ? points[0][1] : 0;
    const tokens = n === null ? null : n + (points && !boxes ? 1 : 0) + (boxes ? 2 : 0);
    const [c0, c1, c2] = this.maskConvs;
    const s = this.embeddingSize;
    const dense = masks
      ? c2.computeOutputShape(c1.computeOutputShape(c0.computeOutputShape(masks)))
      : [b, s, s, this.embedDim];
    return [[b, tokens, this.embedDim], dense];
  }

  /** Splits call's inputs (tensors or shapes) into the prompt kinds by rank, in call's order. */
  private static sortPrompts<T extends { length: number } | { rank: number }>(
    xs: T[],
  ): { points?: [T, T]; boxes?: T; masks?: T } {
    const rank = (x: T) => ('rank' in x ? x.rank : x.length);
    let i = 0;
    const take = (r: number) => (i < xs.length && rank(xs[i]) === r ? xs[i++] : undefined);
    const coords = take(3);
    const points: [T, T] | undefined = coords && [coords, xs[i++]];
    const boxes = take(2);
    const masks = take(4);
    if (i !== xs.length) {
      throw new Sam2Error('INPUT', 'PromptEncoder inputs: [coords, labels], boxes, masks, in that order.');
    }
    return { points, boxes, masks };
  }
}
tf.serialization.registerClass(PromptEncoder);
