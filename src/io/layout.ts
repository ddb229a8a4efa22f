/**
 * PyTorch -> TF.js tensor layouts. Ported weights keep their PyTorch key but are stored in the
 * layout our layers consume, so nothing is reshuffled at run time:
 * - conv weights (O, I, kh, kw) -> HWIO (kh, kw, I, O)
 * - depthwise conv weights (C, 1, kh, kw) -> (kh, kw, C, 1), tf.depthwiseConv2d's filter
 * - transposed conv weights (I, O, kh, kw) -> (kh, kw, O, I), tf.conv2dTranspose's filter
 * - linear weights (out, in) -> (in, out)
 * - learned position embeddings (1, C, H, W) -> NHWC (1, H, W, C)
 * Embedding tables, biases, norms and the remaining parameters keep their shape.
 */

export type LayoutKind = 'conv' | 'depthwise' | 'convTranspose' | 'linear' | 'nchwToNhwc' | 'keep';

const EMBEDDING_TABLES = [
  /^(sam_)?prompt_encoder\.point_embeddings\.\d+\.weight$/,
  /^(sam_)?prompt_encoder\.not_a_point_embed\.weight$/,
  /^(sam_)?prompt_encoder\.no_mask_embed\.weight$/,
  /^(sam_)?mask_decoder\.(iou_token|mask_tokens|obj_score_token)\.weight$/,
];
// SAM 1 checkpoints name the heads without the `sam_` prefix
const CONV_TRANSPOSE = /^(sam_)?mask_decoder\.output_upscaling\.(0|3)\.weight$/;
const DEPTHWISE = /\.dwconv\.weight$/;
const NCHW_EMBEDS = /^image_encoder\.trunk\.(pos_embed|pos_embed_window)$/;

/** How the tensor stored under `key` with PyTorch `shape` is converted. */
export function layoutKind(key: string, shape: readonly number[]): LayoutKind {
  if (NCHW_EMBEDS.test(key)) return 'nchwToNhwc';
  const leaf = key.slice(key.lastIndexOf('.') + 1);
  if (leaf !== 'weight') return 'keep';
  if (shape.length === 4) {
    if (CONV_TRANSPOSE.test(key)) return 'convTranspose';
    if (DEPTHWISE.test(key)) return 'depthwise';
    return 'conv';
  }
  if (shape.length === 2 && !EMBEDDING_TABLES.some((r) => r.test(key))) return 'linear';
  return 'keep';
}

/** Permutation (of PyTorch axes) that produces the TF.js layout, or null to keep. */
function permutation(kind: LayoutKind): number[] | null {
  switch (kind) {
    case 'conv':
      return [2, 3, 1, 0];
    case 'depthwise':
      return [2, 3, 0, 1];
    case 'convTranspose':
      return [2, 3, 1, 0];
    case 'nchwToNhwc':
      return [0, 2, 3, 1];
    case 'linear':
      return [1, 0];
    case 'keep':
      return null;
  }
}

/** The TF.js-layout shape of a tensor with PyTorch `shape` stored under `key`. */
export function tfShape(key: string, shape: readonly number[]): number[] {
  const perm = permutation(layoutKind(key, shape));
  return perm ? perm.map((p) => shape[p]) : [...shape];
}

/** Generic transpose of a C-order array; `out` may be any typed array of the same kind. */
function transpose<T extends { length: number; [i: number]: number }>(
  src: T,
  shape: readonly number[],
  perm: readonly number[],
  out: T,
): T {
  const rank = shape.length;
  const srcStrides = new Array<number>(rank);
  let s = 1;
  for (let i = rank - 1; i >= 0; i--) {
    srcStrides[i] = s;
    s *= shape[i];
  }
  const outShape = perm.map((p) => shape[p]);
  const stepStrides = perm.map((p) => srcStrides[p]);
  const idx = new Array<number>(rank).fill(0);
  let srcOff = 0;
  for (let o = 0; o < src.length; o++) {
    out[o] = src[srcOff];
    // increment the multi-index in output order, tracking the source offset
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      srcOff += stepStrides[d];
      if (idx[d] < outShape[d]) break;
      srcOff -= stepStrides[d] * outShape[d];
      idx[d] = 0;
    }
  }
  return out;
}

/**
 * Converts C-order data of a PyTorch tensor to the TF.js layout of `key`. Works on any
 * element type (float32, or uint16 for float16 shards). Returns the input when nothing moves.
 */
export function toTfLayout<T extends Float32Array | Uint16Array>(key: string, shape: readonly number[], data: T): T {
  const perm = permutation(layoutKind(key, shape));
  if (!perm || data.length === 0) return data;
  const out = new (data.constructor as { new (n: number): T })(data.length);
  return transpose(data, shape, perm, out);
}
