/**
 * The mask decoder's two-way transformer: prompt tokens and image tokens attend to each other
 * (token self-attention, token-to-image, MLP, image-to-token), then a final token-to-image
 * attention. Post-norm blocks; the first block skips adding the query position encoding.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Layer, shapeList, tensorList, type Shape } from './base';
import { LayerNorm, Mlp } from './common';
import { Attention } from './attention';

/**
 * The image-side projections of the first block, which depend only on the image tokens (the
 * image embedding plus the no-mask embedding) and their encoding: the same for every prompt
 * without a mask input, so SamPredictor computes them once per image. Each [1, Ni, 128].
 */
export interface ImageSideProjections {
  /** cross_attn_token_to_image k_proj(image + pe). */
  tokenToImageK: tf.Tensor3D;
  /** cross_attn_token_to_image v_proj(image). */
  tokenToImageV: tf.Tensor3D;
  /** cross_attn_image_to_token q_proj(image + pe). */
  imageToTokenQ: tf.Tensor3D;
}

export class TwoWayAttentionBlock extends Sam2Layer {
  static className = 'Sam2TwoWayAttentionBlock';
  readonly selfAttn: Attention;
  readonly crossAttnTokenToImage: Attention;
  readonly crossAttnImageToToken: Attention;
  readonly mlp: Mlp;
  readonly norms: LayerNorm[];

  /** `mlpLayerNames`: keys of the MLP's two linears (SAM 1: lin1, lin2; default layers.0/1). */
  constructor(
    key: string,
    dim: number,
    heads: number,
    mlpDim: number,
    readonly skipFirstLayerPe: boolean,
    mlpLayerNames?: string[],
  ) {
    super();
    this.remember<typeof TwoWayAttentionBlock>(key, dim, heads, mlpDim, skipFirstLayerPe, mlpLayerNames);
    this.selfAttn = this.child(new Attention(`${key}.self_attn`, dim, heads));
    this.crossAttnTokenToImage = this.child(new Attention(`${key}.cross_attn_token_to_image`, dim, heads, 2));
    this.mlp = this.child(new Mlp(`${key}.mlp`, dim, mlpDim, dim, 2, 'relu', false, mlpLayerNames));
    this.crossAttnImageToToken = this.child(new Attention(`${key}.cross_attn_image_to_token`, dim, heads, 2));
    this.norms = [1, 2, 3, 4].map((i) => this.child(new LayerNorm(`${key}.norm${i}`, dim)));
  }

  /** The first block's projections that read only the image tokens and their encoding. */
  projectImageSide(keys: tf.Tensor3D, keyPe: tf.Tensor3D): ImageSideProjections {
    return tf.tidy(() => {
      const kp = tf.add(keys, keyPe) as tf.Tensor3D;
      return {
        tokenToImageK: this.crossAttnTokenToImage.kProj.forward(kp) as tf.Tensor3D,
        tokenToImageV: this.crossAttnTokenToImage.vProj.forward(keys) as tf.Tensor3D,
        imageToTokenQ: this.crossAttnImageToToken.qProj.forward(kp) as tf.Tensor3D,
      };
    });
  }

  /**
   * queries [B, Nt, C] and keys (image tokens) [1 or B, Ni, C]; returns the updated pair.
   * `pre` (from projectImageSide on these keys) skips the image-side projections.
   */
  forward(
    queries: tf.Tensor3D,
    keys: tf.Tensor3D,
    queryPe: tf.Tensor3D,
    keyPe: tf.Tensor3D,
    pre?: ImageSideProjections,
  ): [tf.Tensor3D, tf.Tensor3D] {
    return tf.tidy(() => {
      const [n1, n2, n3, n4] = this.norms;
      let q: tf.Tensor3D;
      if (this.skipFirstLayerPe) {
        q = this.selfAttn.forward(queries, queries, queries);
      } else {
        const qp = tf.add(queries, queryPe) as tf.Tensor3D;
        q = tf.add(queries, this.selfAttn.forward(qp, qp, queries)) as tf.Tensor3D;
      }
      q = n1.forward(q) as tf.Tensor3D;
      const kp = pre ? null : (tf.add(keys, keyPe) as tf.Tensor3D);
      const nt = queries.shape[1];
      const t2i = this.crossAttnTokenToImage;
      const qPe = tf.add(q, queryPe) as tf.Tensor3D;
      // image tokens of each prompt set (after the first block): attend without projecting them
      const attended =
        pre || !t2i.reassociates(nt)
          ? t2i.forward(qPe, kp, keys, pre ? { k: pre.tokenToImageK, v: pre.tokenToImageV } : {})
          : t2i.tokenToImage(qPe, kp!, keys);
      q = n2.forward(tf.add(q, attended)) as tf.Tensor3D;
      q = n3.forward(tf.add(q, this.mlp.forward(q))) as tf.Tensor3D;
      const qp = tf.add(q, queryPe) as tf.Tensor3D;
      const i2t = this.crossAttnImageToToken;
      const image = pre ? { q: pre.imageToTokenQ } : { keys: kp! };
      const update = i2t.reassociates(nt)
        ? i2t.imageToToken(image, qp, q)
        : i2t.forward(kp, qp, q, pre ? { q: pre.imageToTokenQ } : {});
      const k = n4.forward(tf.add(keys, update)) as tf.Tensor3D;
      return [q, k];
    });
  }

  /** inputs [queries, keys, queryPe, keyPe]; returns [queries, keys] updated. */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    const [queries, keys, queryPe, keyPe] = tensorList(inputs) as tf.Tensor3D[];
    return this.forward(queries, keys, queryPe, keyPe);
  }

  /** Both token sets keep their shapes. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape[] {
    const [queries, keys] = shapeList(inputShape);
    return [queries, keys];
  }
}
tf.serialization.registerClass(TwoWayAttentionBlock);

export class TwoWayTransformer extends Sam2Layer {
  static className = 'Sam2TwoWayTransformer';
  readonly layers: TwoWayAttentionBlock[];
  readonly finalAttnTokenToImage: Attention;
  readonly normFinalAttn: LayerNorm;

  constructor(key: string, depth = 2, dim = 256, heads = 8, mlpDim = 2048, mlpLayerNames?: string[]) {
    super();
    this.remember<typeof TwoWayTransformer>(key, depth, dim, heads, mlpDim, mlpLayerNames);
    this.layers = Array.from({ length: depth }, (_, i) =>
      this.child(new TwoWayAttentionBlock(`${key}.layers.${i}`, dim, heads, mlpDim, i === 0, mlpLayerNames)),
    );
    this.finalAttnTokenToImage = this.child(new Attention(`${key}.final_attn_token_to_image`, dim, heads, 2));
    this.normFinalAttn = this.child(new LayerNorm(`${key}.norm_final_attn`, dim));
  }

  /**
   * image [1 or B, Ni, C] tokens with their encoding imagePe [1 or B, Ni, C]; point tokens
   * [B, Nt, C]. Returns [queries [B, Nt, C], image tokens [B, Ni, C]]. `pre`: the first block's
   * projectImageSide(image, imagePe), computed earlier.
   */
  forward(
    image: tf.Tensor3D,
    imagePe: tf.Tensor3D,
    points: tf.Tensor3D,
    pre?: ImageSideProjections,
  ): [tf.Tensor3D, tf.Tensor3D] {
    return tf.tidy(() => {
      let queries = points;
      let keys = image;
      this.layers.forEach(
        (layer, i) => ([queries, keys] = layer.forward(queries, keys, points, imagePe, i === 0 ? pre : undefined)),
      );
      const q = tf.add(queries, points) as tf.Tensor3D;
      const k = tf.add(keys, imagePe) as tf.Tensor3D;
      const last = this.finalAttnTokenToImage;
      const attended = last.reassociates(q.shape[1]) ? last.tokenToImage(q, k, keys) : last.forward(q, k, keys);
      queries = tf.add(queries, attended) as tf.Tensor3D;
      return [this.normFinalAttn.forward(queries) as tf.Tensor3D, keys];
    });
  }

  /** inputs [image, imagePe, points]; returns [queries, image tokens]. */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    const [image, imagePe, points] = tensorList(inputs) as tf.Tensor3D[];
    return this.forward(image, imagePe, points);
  }

  /** [image [B, Ni, C], imagePe, points [B, Nt, C]] -> [[B, Nt, C], [B, Ni, C]]. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape[] {
    const [image, , points] = shapeList(inputShape);
    return [points, image];
  }
}
tf.serialization.registerClass(TwoWayTransformer);
