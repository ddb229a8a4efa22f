/**
 * ONNX emitters for our custom layers: each function takes a loaded layer and the names of its
 * input values and appends the same computation to an OnnxBuilder, with the layer's own weights
 * as initializers. The TF.js layers stay the definition of the architecture; these mirror their
 * forward() step by step (NHWC feature maps, [B, N, C] token sequences).
 */
import * as tf from '@tensorflow/tfjs';
import type { Sam2Layer } from '../layers/base';
import type { Conv2d, LayerNorm, Linear, Mlp } from '../layers/common';
import type { MultiScaleBlock } from '../layers/hiera_block';
import { headMaskValues, type Attention } from '../layers/attention';
import type { TwoWayAttentionBlock, TwoWayTransformer } from '../layers/two_way_transformer';
import type { OnnxBuilder } from './builder';

/** Host copy of a tensor as float32. */
export function hostData(t: tf.Tensor): Float32Array {
  return Float32Array.from(t.dataSync() as Float32Array);
}

/** A layer's parameters (its own and its children's) by PyTorch key. */
export function paramsOf(layer: Sam2Layer): Map<string, tf.LayerVariable> {
  const keys = layer.paramKeys();
  const vars = layer.nonTrainableWeights;
  return new Map(keys.map((k, i) => [k, vars[i]]));
}

/** Initializer from a parameter, optionally rearranged by `f` (a tf op, run once at build time). */
export function paramInit(
  b: OnnxBuilder,
  hint: string,
  v: tf.LayerVariable | tf.Tensor,
  f?: (t: tf.Tensor) => tf.Tensor,
): string {
  const t = tf.tidy(() => {
    const x = 'read' in v ? v.read() : v;
    return f ? f(x) : x.clone();
  });
  const name = b.weight(hint, hostData(t), t.shape);
  t.dispose();
  return name;
}

/** Exact (erf) GELU, written in the form ORT's GeluFusion recognizes (x/sqrt2 as a Div: a Mul is not fused). */
export function emitGelu(b: OnnxBuilder, x: string): string {
  const e = b.op('Erf', [b.op('Div', [x, b.f32(Math.SQRT2)])]);
  return b.op('Mul', [b.op('Mul', [x, b.op('Add', [e, b.f32(1)])]), b.f32(0.5)], {}, 'gelu');
}

export function emitLinear(b: OnnxBuilder, l: Linear, x: string, activation?: 'relu'): string {
  return b.scope(l.key, () => {
    let y = b.op('MatMul', [x, paramInit(b, 'weight', l.weight)]);
    if (l.bias) y = b.op('Add', [y, paramInit(b, 'bias', l.bias)]);
    return activation === 'relu' ? b.op('Relu', [y]) : y;
  });
}

export function emitLayerNorm(b: OnnxBuilder, l: LayerNorm, x: string): string {
  return b.scope(l.key, () =>
    b.op('LayerNormalization', [x, paramInit(b, 'weight', l.weight), paramInit(b, 'bias', l.bias)], {
      axis: -1,
      epsilon: { float: l.eps },
    }),
  );
}

/** NHWC -> NCHW -> Conv -> NHWC; 1x1 stride-1 convs become a MatMul over channels. */
export function emitConv2d(b: OnnxBuilder, l: Conv2d, x: string): string {
  return b.scope(l.key, () => {
    const [kh, kw] = l.weight.shape as number[];
    if (kh === 1 && kw === 1 && l.stride === 1 && l.padding === 0) {
      const y = b.op('MatMul', [x, paramInit(b, 'weight', l.weight, (w) => tf.reshape(w, [l.inDim, l.outDim]))]);
      return l.bias ? b.op('Add', [y, paramInit(b, 'bias', l.bias)]) : y;
    }
    const p = l.padding;
    const inputs = [
      b.op('Transpose', [x], { perm: [0, 3, 1, 2] }),
      paramInit(b, 'weight', l.weight, (w) => tf.transpose(w, [3, 2, 0, 1])),
    ];
    if (l.bias) inputs.push(paramInit(b, 'bias', l.bias));
    const y = b.op('Conv', inputs, { kernel_shape: [kh, kw], strides: [l.stride, l.stride], pads: [p, p, p, p] });
    return b.op('Transpose', [y], { perm: [0, 2, 3, 1] });
  });
}

export function emitMlp(b: OnnxBuilder, m: Mlp, x: string): string {
  let h = x;
  m.layers.forEach((l, i) => {
    const last = i === m.layers.length - 1;
    if (last) h = emitLinear(b, l, h);
    else h = m.activation === 'relu' ? emitLinear(b, l, h, 'relu') : emitGelu(b, emitLinear(b, l, h));
  });
  return m.sigmoidOutput ? b.op('Sigmoid', [h]) : h;
}

/** 2x2 stride-2 max pooling of an NHWC value. */
function maxPool2NHWC(b: OnnxBuilder, x: string): string {
  const t = b.op('Transpose', [x], { perm: [0, 3, 1, 2] });
  const p = b.op('MaxPool', [t], { kernel_shape: [2, 2], strides: [2, 2] });
  return b.op('Transpose', [p], { perm: [0, 2, 3, 1] });
}

/** Columns [start, start + n) of a row-major [rows, cols] matrix. */
function cols(data: Float32Array, rows: number, ncols: number, start: number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) for (let c = 0; c < n; c++) out[r * n + c] = data[r * ncols + start + c] * scale;
  return out;
}

/**
 * Hiera's MultiScaleBlock for a static input shape [1, H, W, C]: windows as Pad/Reshape/
 * Transpose, all heads in one batched MatMul, queries pooled with MaxPool.
 * Returns the output value and its shape.
 */
export function emitMultiScaleBlock(
  b: OnnxBuilder,
  blk: MultiScaleBlock,
  x: string,
  shape: number[],
): { y: string; shape: number[] } {
  return b.scope(blk.key, () => {
    const [, H, W, C] = shape;
    const { dimOut, numHeads, windowSize: ws, qPool } = blk.opts;
    const d = dimOut / numHeads;
    const P = paramsOf(blk);
    const xn = emitLayerNorm(b, blk.norm1, x);
    let shortcut = x;
    let Ho = H;
    let Wo = W;
    if (qPool) {
      Ho = Math.floor(H / 2);
      Wo = Math.floor(W / 2);
    }
    if (blk.proj) {
      const projected = emitLinear(b, blk.proj, xn);
      shortcut = qPool ? maxPool2NHWC(b, projected) : projected;
    }
    // q, k, v weights split at build time (scale folded into q, as the TF.js layer does)
    const qkvW = hostData(P.get(`${blk.key}.attn.qkv.weight`)!.read());
    const qkvB = hostData(P.get(`${blk.key}.attn.qkv.bias`)!.read());
    const scale = 1 / Math.sqrt(d);
    const wq = b.weight('wq', cols(qkvW, C, 3 * dimOut, 0, dimOut, scale), [C, dimOut]);
    const wk = b.weight('wk', cols(qkvW, C, 3 * dimOut, dimOut, dimOut), [C, dimOut]);
    const wv = b.weight('wv', cols(qkvW, C, 3 * dimOut, 2 * dimOut, dimOut), [C, dimOut]);
    const bq = b.weight('bq', cols(qkvB, 1, 3 * dimOut, 0, dimOut, scale), [dimOut]);
    const bk = b.weight('bk', cols(qkvB, 1, 3 * dimOut, dimOut, dimOut), [dimOut]);
    const bv = b.weight('bv', cols(qkvB, 1, 3 * dimOut, 2 * dimOut, dimOut), [dimOut]);
    const wProj = paramInit(b, 'proj_w', P.get(`${blk.key}.attn.proj.weight`)!);
    const bProj = paramInit(b, 'proj_b', P.get(`${blk.key}.attn.proj.bias`)!);

    // tokens [G, h*w, C] of G windows (or the whole map)
    let tokens: string;
    let g: number;
    let h: number;
    let w: number;
    let hp = H;
    let wp = W;
    if (ws > 0) {
      hp = Math.ceil(H / ws) * ws;
      wp = Math.ceil(W / ws) * ws;
      const padded = hp !== H || wp !== W ? b.op('Pad', [xn, b.i64([0, 0, 0, 0, 0, hp - H, wp - W, 0])]) : xn;
      const r = b.op('Reshape', [padded, b.i64([hp / ws, ws, wp / ws, ws * C])]);
      const t = b.op('Transpose', [r], { perm: [0, 2, 1, 3] });
      g = (hp / ws) * (wp / ws);
      h = w = ws;
      tokens = b.op('Reshape', [t, b.i64([g, ws * ws, C])]);
    } else {
      g = 1;
      h = H;
      w = W;
      tokens = b.op('Reshape', [xn, b.i64([1, H * W, C])]);
    }
    const hq = qPool ? Math.floor(h / 2) : h;
    const wq_ = qPool ? Math.floor(w / 2) : w;
    const nq = hq * wq_;
    const n = h * w;
    let q = b.op('Add', [b.op('MatMul', [tokens, wq]), bq]);
    if (qPool) {
      const qs = maxPool2NHWC(b, b.op('Reshape', [q, b.i64([g, h, w, dimOut])]));
      q = b.op('Reshape', [qs, b.i64([g, nq, dimOut])]);
    }
    const k = b.op('Add', [b.op('MatMul', [tokens, wk]), bk]);
    const v = b.op('Add', [b.op('MatMul', [tokens, wv]), bv]);
    const qh = b.op('Transpose', [b.op('Reshape', [q, b.i64([g, nq, numHeads, d])])], { perm: [0, 2, 1, 3] });
    const kT = b.op('Transpose', [b.op('Reshape', [k, b.i64([g, n, numHeads, d])])], { perm: [0, 2, 3, 1] });
    const vh = b.op('Transpose', [b.op('Reshape', [v, b.i64([g, n, numHeads, d])])], { perm: [0, 2, 1, 3] });
    const p = b.op('Softmax', [b.op('MatMul', [qh, kT])], { axis: -1 });
    const o = b.op('Transpose', [b.op('MatMul', [p, vh])], { perm: [0, 2, 1, 3] }); // [g, nq, heads, d]
    const proj = b.op('Add', [b.op('MatMul', [b.op('Reshape', [o, b.i64([g, nq, dimOut])]), wProj]), bProj]);

    let attn: string;
    if (ws > 0) {
      const wsOut = qPool ? ws / 2 : ws;
      const hpo = Math.ceil(Ho / wsOut) * wsOut;
      const wpo = Math.ceil(Wo / wsOut) * wsOut;
      const r = b.op('Reshape', [proj, b.i64([hpo / wsOut, wpo / wsOut, wsOut, wsOut * dimOut])]);
      const t = b.op('Transpose', [r], { perm: [0, 2, 1, 3] });
      attn = b.op('Reshape', [t, b.i64([1, hpo, wpo, dimOut])]);
      if (hpo !== Ho || wpo !== Wo) {
        attn = b.op('Slice', [attn, b.i64([0, 0, 0, 0]), b.i64([1, Ho, Wo, dimOut])]);
      }
    } else {
      attn = b.op('Reshape', [proj, b.i64([1, Ho, Wo, dimOut])]);
    }
    const y = b.op('Add', [shortcut, attn]);
    const out = b.op('Add', [y, emitMlp(b, blk.mlp, emitLayerNorm(b, blk.norm2, y))]);
    return { y: out, shape: [1, Ho, Wo, dimOut] };
  });
}

/**
 * Multi-head attention of q [B, Nq, C] over k, v [B, Nk, C] (dynamic B and N). `projected`
 * gives inputs already through their projection (q before the 1/sqrt(d) scaling); their raw
 * input is then unused.
 */
export function emitAttention(
  b: OnnxBuilder,
  a: Attention,
  q: string,
  k: string,
  v: string,
  projected: Partial<Record<'q' | 'k' | 'v', string>> = {},
): string {
  return b.scope(a.key, () => {
    const c = a.qProj.outDim;
    const heads = a.numHeads;
    const d = c / heads;
    const qp = b.op('Mul', [projected.q ?? emitLinear(b, a.qProj, q), b.f32(1 / Math.sqrt(d))]);
    const kp = projected.k ?? emitLinear(b, a.kProj, k);
    const vp = projected.v ?? emitLinear(b, a.vProj, v);
    const split = b.i64([0, 0, heads, d]);
    const qh = b.op('Transpose', [b.op('Reshape', [qp, split])], { perm: [0, 2, 1, 3] });
    const kT = b.op('Transpose', [b.op('Reshape', [kp, split])], { perm: [0, 2, 3, 1] });
    const vh = b.op('Transpose', [b.op('Reshape', [vp, split])], { perm: [0, 2, 1, 3] });
    const p = b.op('Softmax', [b.op('MatMul', [qh, kT])], { axis: -1 });
    const o = b.op('Transpose', [b.op('MatMul', [p, vh])], { perm: [0, 2, 1, 3] });
    return emitLinear(b, a.outProj, b.op('Reshape', [o, b.i64([0, 0, c])]));
  });
}

/** [heads, 1, c] with 1 where channel j belongs to head h (attention.ts headMaskValues). */
function emitHeadMask(b: OnnxBuilder, heads: number, c: number): string {
  return b.weight('head_mask', headMaskValues(heads, c), [heads, 1, c]);
}

/** x [B, Nt, c] -> [B, heads * Nt, c], row (h, t) keeping only head h's channels of token t. */
function emitBlockDiagonal(b: OnnxBuilder, x: string, mask: string, c: number): string {
  return b.op('Reshape', [b.op('Mul', [b.op('Unsqueeze', [x, b.i64([1])]), mask]), b.i64([0, -1, c])]);
}

/**
 * Attention.tokenToImage: a few tokens q [B, Nt, C] over image tokens keys (image + encoding)
 * and values (image) [B or 1, Ni, C], reassociated so no image token is projected (half the
 * MACs of projecting keys and values while heads x Nt < c).
 */
export function emitTokenToImage(b: OnnxBuilder, a: Attention, q: string, keys: string, values: string): string {
  return b.scope(a.key, () => {
    const c = a.qProj.outDim;
    const heads = a.numHeads;
    const mask = emitHeadMask(b, heads, c);
    const qp = b.op('Mul', [emitLinear(b, a.qProj, q), b.f32(1 / Math.sqrt(c / heads))]);
    const wkT = paramInit(b, 'k_proj.weight_t', a.kProj.weight, (w) => tf.transpose(w));
    const qk = b.op('MatMul', [emitBlockDiagonal(b, qp, mask, c), wkT]); // [B, heads * Nt, C]
    // q . bk is the same for every key of a row: it cancels in the softmax
    const p = b.op('Softmax', [b.op('MatMul', [qk, b.op('Transpose', [keys], { perm: [0, 2, 1] })])], { axis: -1 });
    const pooled = b.op('MatMul', [p, values]); // [B, heads * Nt, C]
    const v = b.op('MatMul', [pooled, paramInit(b, 'v_proj.weight', a.vProj.weight)]); // [B, heads * Nt, c]
    const perHead = b.op('Reshape', [
      v,
      b.op('Concat', [b.op('Shape', [q], { end: 1 }), b.i64([heads, -1, c])], { axis: 0 }),
    ]);
    // each channel from its own head; softmax rows sum to 1, so the value bias is added once
    const out = b.op('Add', [
      b.op('ReduceSum', [b.op('Mul', [perHead, mask]), b.i64([1])], { keepdims: 0 }),
      paramInit(b, 'v_proj.bias', a.vProj.bias!),
    ]);
    return emitLinear(b, a.outProj, out); // [B, Nt, c] -> [B, Nt, C]
  });
}

/**
 * Attention.imageToToken: image tokens over a few tokens k (tokens + encoding), v (tokens)
 * [B, Nt, C], with the output projection, reassociated so no image token is projected.
 * `image`: { keys } (image + encoding [B or 1, Ni, C]) or { q } (its q_proj, computed once per image).
 */
export function emitImageToToken(
  b: OnnxBuilder,
  a: Attention,
  image: { keys: string } | { q: string },
  k: string,
  v: string,
): string {
  return b.scope(a.key, () => {
    const c = a.qProj.outDim;
    const heads = a.numHeads;
    const mask = emitHeadMask(b, heads, c);
    const kb = emitBlockDiagonal(b, b.op('Mul', [emitLinear(b, a.kProj, k), b.f32(1 / Math.sqrt(c / heads))]), mask, c);
    const kbT = b.op('Transpose', [kb], { perm: [0, 2, 1] }); // [B, c, heads * Nt]
    let scores: string; // [B, Ni, heads * Nt]
    if ('keys' in image) {
      // keys (Wq kb^T) + bq kb^T
      const wq = b.op('MatMul', [paramInit(b, 'q_proj.weight', a.qProj.weight), kbT]); // [B, C, heads * Nt]
      const bias = b.op('MatMul', [paramInit(b, 'q_proj.bias_row', a.qProj.bias!, (t) => tf.reshape(t, [1, c])), kbT]);
      scores = b.op('Add', [b.op('MatMul', [image.keys, wq]), bias]);
    } else {
      scores = b.op('MatMul', [image.q, kbT]);
    }
    // softmax over each head's tokens
    const split = b.op('Concat', [b.op('Shape', [scores], { end: 2 }), b.i64([heads, -1])], { axis: 0 });
    const p = b.op('Reshape', [
      b.op('Softmax', [b.op('Reshape', [scores, split])], { axis: -1 }),
      b.op('Shape', [scores]),
    ]);
    // each head's values through its rows of out_proj: [B, heads * Nt, C]
    const vo = b.op('MatMul', [
      emitBlockDiagonal(b, emitLinear(b, a.vProj, v), mask, c),
      paramInit(b, 'out_proj.weight', a.outProj.weight),
    ]);
    return b.op('Add', [b.op('MatMul', [p, vo]), paramInit(b, 'out_proj.bias', a.outProj.bias!)]);
  });
}

/** Names of the first two-way block's image-side projections (as ImageSideProjections). */
export type ImageSideValues = Record<'tokenToImageK' | 'tokenToImageV' | 'imageToTokenQ', string>;

/** TwoWayAttentionBlock.projectImageSide: the projections that read only image tokens and their encoding. */
export function emitImageSideProjections(
  b: OnnxBuilder,
  l: TwoWayAttentionBlock,
  keys: string,
  keyPe: string,
): ImageSideValues {
  const kp = b.op('Add', [keys, keyPe]);
  return {
    tokenToImageK: b.scope(l.crossAttnTokenToImage.key, () => emitLinear(b, l.crossAttnTokenToImage.kProj, kp)),
    tokenToImageV: b.scope(l.crossAttnTokenToImage.key, () => emitLinear(b, l.crossAttnTokenToImage.vProj, keys)),
    imageToTokenQ: b.scope(l.crossAttnImageToToken.key, () => emitLinear(b, l.crossAttnImageToToken.qProj, kp)),
  };
}

/** TwoWayAttentionBlock.forward; `pre` (emitImageSideProjections of these keys) skips those projections. */
export function emitTwoWayBlock(
  b: OnnxBuilder,
  l: TwoWayAttentionBlock,
  queries: string,
  keys: string,
  queryPe: string,
  keyPe: string,
  pre?: ImageSideValues,
): [string, string] {
  const [n1, n2, n3, n4] = l.norms;
  let q: string;
  if (l.skipFirstLayerPe) {
    q = emitAttention(b, l.selfAttn, queries, queries, queries);
  } else {
    const qp = b.op('Add', [queries, queryPe]);
    q = b.op('Add', [queries, emitAttention(b, l.selfAttn, qp, qp, queries)]);
  }
  q = emitLayerNorm(b, n1, q);
  // the image tokens are projected only where `pre` has them (once per image); elsewhere the
  // attentions are reassociated around them, as the TF.js layers do for a few tokens
  const kp = pre ? '' : b.op('Add', [keys, keyPe]);
  const qPe = b.op('Add', [q, queryPe]);
  const attended = pre
    ? emitAttention(b, l.crossAttnTokenToImage, qPe, '', '', { k: pre.tokenToImageK, v: pre.tokenToImageV })
    : emitTokenToImage(b, l.crossAttnTokenToImage, qPe, kp, keys);
  q = emitLayerNorm(b, n2, b.op('Add', [q, attended]));
  q = emitLayerNorm(b, n3, b.op('Add', [q, emitMlp(b, l.mlp, q)]));
  const qp = b.op('Add', [q, queryPe]);
  const image = pre ? { q: pre.imageToTokenQ } : { keys: kp };
  const k = emitLayerNorm(b, n4, b.op('Add', [keys, emitImageToToken(b, l.crossAttnImageToToken, image, qp, q)]));
  return [q, k];
}

/**
 * image [B, Ni, C], imagePe [1, Ni, C], points [B, Nt, C] -> [queries, image tokens]. `pre`:
 * the first block's image-side projections, computed elsewhere (once per image).
 */
export function emitTwoWayTransformer(
  b: OnnxBuilder,
  t: TwoWayTransformer,
  image: string,
  imagePe: string,
  points: string,
  pre?: ImageSideValues,
): [string, string] {
  let queries = points;
  let keys = image;
  t.layers.forEach((layer, i) => {
    [queries, keys] = b.scope(`layers.${i}`, () =>
      emitTwoWayBlock(b, layer, queries, keys, points, imagePe, i === 0 ? pre : undefined),
    );
  });
  const q = b.op('Add', [queries, points]);
  const k = b.op('Add', [keys, imagePe]);
  queries = b.op('Add', [queries, emitTokenToImage(b, t.finalAttnTokenToImage, q, k, keys)]);
  return [emitLayerNorm(b, t.normFinalAttn, queries), keys];
}
