/**
 * Whole ONNX models from a loaded Sam2Model: the image encoder as SamPredictor caches it
 * (trunk + neck + conv_s0/conv_s1 + no-memory embedding) and the prompt encoder + mask decoder.
 * Every value is NHWC / [B, N, C] like the TF.js layers, so outputs become tf tensors as they are.
 */
import * as tf from '@tensorflow/tfjs';
import type { Sam2Model } from '../model/sam2';
import type { RoPEAttention } from '../layers/rope_attention';
import { axialRopeTables } from '../layers/rope_attention';
import { OnnxBuilder, type ValueInfo } from './builder';
import {
  emitConv2d,
  emitGelu,
  emitImageSideProjections,
  emitLayerNorm,
  emitLinear,
  emitMlp,
  emitMultiScaleBlock,
  emitTwoWayTransformer,
  hostData,
  type ImageSideValues,
  paramInit,
  paramsOf,
} from './layers';

/** Bumped whenever the emitted graphs change, so cached .onnx files are rebuilt. */
export const GRAPH_VERSION = 3;

export interface BuiltModel {
  name: 'image_encoder' | 'prompt_mask_decoder' | 'prompt_decoder_no_mask' | 'memory_attention' | 'memory_encoder';
  bytes: Uint8Array;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

/**
 * The image encoder's extra outputs: the mask decoder's first-block projections of the image
 * tokens (image_embed + no_mask_embed, plus image_pe where the reference adds it), the same for
 * every prompt without a mask input; prompt_decoder_no_mask takes them instead of computing them.
 */
const IMAGE_SIDE: { name: string; key: keyof ImageSideValues; doc: string }[] = [
  {
    name: 'token_to_image_k',
    key: 'tokenToImageK',
    doc: 'first two-way block: cross_attn_token_to_image k_proj(image tokens + image_pe)',
  },
  {
    name: 'token_to_image_v',
    key: 'tokenToImageV',
    doc: 'first two-way block: cross_attn_token_to_image v_proj(image tokens)',
  },
  {
    name: 'image_to_token_q',
    key: 'imageToTokenQ',
    doc: 'first two-way block: cross_attn_image_to_token q_proj(image tokens + image_pe)',
  },
];
/** Output names of the image encoder that prompt_decoder_no_mask takes. */
export const IMAGE_SIDE_NAMES = IMAGE_SIDE.map((v) => v.name);

/** Channels of each image-side projection (the decoder attention's internal width). */
const imageSideDim = (model: Sam2Model) => model.maskDecoder.transformer.layers[0].crossAttnTokenToImage.kProj.outDim;

/** The prompt encoder's no-mask dense embedding [1, 1, 1, D] (the dense prompt without a mask). */
function emitNoMaskEmbed(b: OnnxBuilder, model: Sam2Model): string {
  const w = paramsOf(model.promptEncoder).get('sam_prompt_encoder.no_mask_embed.weight')!;
  return paramInit(b, 'no_mask_embed', w, (t) => tf.reshape(t, [1, 1, 1, -1]));
}

/** The decoder's encoding of the image-embedding grid [1, s*s, D] (PromptEncoder.getDensePe). */
function emitImagePe(b: OnnxBuilder, model: Sam2Model): string {
  const pe = model.promptEncoder.getDensePe();
  return b.weight('image_pe', hostData(pe), [1, pe.shape[1] * pe.shape[2], pe.shape[3]]);
}

/** Image encoder: image [1, S, S, 3] (normalized, NHWC) -> image_embed, high_res_feats_0/1, vision_features. */
export function buildImageEncoder(model: Sam2Model): BuiltModel {
  const enc = model.imageEncoder;
  const S = model.config.imageSize;
  const b = new OnnxBuilder('sam2_image_encoder');
  const x = b.input(
    'image',
    'float32',
    [1, S, S, 3],
    'preprocessed image, NHWC: resized to S x S, /255, ImageNet mean/std',
  );
  // trunk: patch embedding + position embedding (computed by the TF.js layer, a constant here)
  const trunk = enc.trunk;
  const s4 = Math.ceil(S / 4);
  let h = b.scope('trunk', () => {
    const pe = emitConv2d(b, trunk.patchEmbed, x);
    const pos = trunk.positionEmbedding(s4, s4);
    return b.op('Add', [pe, b.weight('pos_embed', hostData(pos), pos.shape)]);
  });
  let shape = [1, s4, s4, model.config.trunk.embedDim];
  const stages: { v: string; shape: number[] }[] = [];
  trunk.blocks.forEach((blk, i) => {
    const r = emitMultiScaleBlock(b, blk, h, shape);
    h = r.y;
    shape = r.shape;
    if (trunk.stageEnds.includes(i)) stages.push({ v: h, shape });
  });
  // FPN neck, top-down as FpnNeck.forward
  const neck = enc.neck;
  const n = neck.convs.length - 1;
  const feats: string[] = new Array(stages.length);
  let prev: string | undefined;
  for (let i = n; i >= 0; i--) {
    const lateral = emitConv2d(b, neck.convs[n - i], stages[i].v);
    if (prev && neck.cfg.fpnTopDownLevels.includes(i)) {
      // nearest 2x upsampling as broadcast: [1, h, 1, w, 1, C] -> [1, h, 2, w, 2, C]
      const [, hh, ww] = stages[i + 1].shape;
      const c = neck.cfg.dModel;
      const r = b.op('Reshape', [prev, b.i64([1, hh, 1, ww, 1, c])]);
      const e = b.op('Expand', [r, b.i64([1, hh, 2, ww, 2, c])]);
      prev = b.op('Add', [lateral, b.op('Reshape', [e, b.i64([1, 2 * hh, 2 * ww, c])])]);
    } else {
      prev = lateral;
    }
    feats[i] = prev;
  }
  const s0 = emitConv2d(b, enc.convS0, feats[0]);
  const s1 = emitConv2d(b, enc.convS1, feats[1]);
  const embed = b.op('Add', [
    feats[2],
    paramInit(b, 'no_mem_embed', enc.noMemEmbed, (t) => tf.reshape(t, [1, 1, 1, -1])),
  ]);
  const d = model.config.neck.dModel;
  const s16 = S / model.config.backboneStride;
  b.output('image_embed', embed, 'float32', [1, s16, s16, d], 'lowest-resolution features + no_mem_embed, NHWC');
  b.output('high_res_feats_0', s0, 'float32', [1, 4 * s16, 4 * s16, d / 8], 'conv_s0 of neck level 0, NHWC');
  b.output('high_res_feats_1', s1, 'float32', [1, 2 * s16, 2 * s16, d / 4], 'conv_s1 of neck level 1, NHWC');
  b.output(
    'vision_features',
    feats[2],
    'float32',
    [1, s16, s16, d],
    'lowest-resolution features (video tracking), NHWC',
  );
  // what every prompt without a mask input shares on this image: the inputs of prompt_decoder_no_mask
  // (the decoder's own image tokens and encoding, as buildDecoder makes them without a mask)
  const pre = b.scope('decoder_image_side', () => {
    const src = b.op('Reshape', [b.op('Add', [embed, emitNoMaskEmbed(b, model)]), b.i64([1, s16 * s16, d])]);
    return emitImageSideProjections(b, model.maskDecoder.transformer.layers[0], src, emitImagePe(b, model));
  });
  for (const { name, key, doc } of IMAGE_SIDE)
    b.output(name, pre[key], 'float32', [1, s16 * s16, imageSideDim(model)], doc);
  return {
    name: 'image_encoder',
    bytes: b.toBytes(`${model.config.name} image encoder (sam2-tfjs)`),
    inputs: b.inputs,
    outputs: b.outputs,
  };
}

/**
 * Prompt encoder + mask decoder, batched over B prompt sets of N points on one image.
 * Boxes are two points labelled 2 and 3 (as the image predictor passes them); the graph appends
 * the "not a point" padding token itself. Outputs all four masks (NHWC) and IoUs: the multimask
 * choice and dynamic stability selection are applied by the caller (see OrtExecutor).
 */
export function buildPromptMaskDecoder(model: Sam2Model): BuiltModel {
  return buildDecoder(model, false);
}

/**
 * The prompt decoder for prompts without a mask input (all clicks and boxes): the same as
 * prompt_mask_decoder with has_mask_input 0, but it takes the first block's image-side
 * projections from the image encoder (token_to_image_k/v, image_to_token_q) instead of
 * computing them for every prompt (for one click, ~20% of the decoder's work).
 */
export function buildPromptDecoderNoMask(model: Sam2Model): BuiltModel {
  return buildDecoder(model, true);
}

function buildDecoder(model: Sam2Model, noMaskInput: boolean): BuiltModel {
  const pe = model.promptEncoder;
  const md = model.maskDecoder;
  const S = model.config.imageSize;
  const s = pe.embeddingSize;
  const m = pe.maskInputSize;
  const D = pe.embedDim;
  const P = paramsOf(pe);
  const Q = paramsOf(md);
  const b = new OnnxBuilder(noMaskInput ? 'sam2_prompt_decoder_no_mask' : 'sam2_prompt_mask_decoder');
  const imageEmbed = b.input('image_embed', 'float32', [1, s, s, D], 'from the image encoder');
  const feat0 = b.input('high_res_feats_0', 'float32', [1, 4 * s, 4 * s, D / 8], 'from the image encoder');
  const feat1 = b.input('high_res_feats_1', 'float32', [1, 2 * s, 2 * s, D / 4], 'from the image encoder');
  const coords = b.input(
    'point_coords',
    'float32',
    ['B', 'N', 2],
    'x, y in model-input pixels (0..S); a box is 2 points',
  );
  const labels = b.input('point_labels', 'float32', ['B', 'N'], '1 foreground, 0 background, 2/3 box corners');
  const inner = imageSideDim(model);
  const pre = noMaskInput
    ? (Object.fromEntries(
        IMAGE_SIDE.map(({ name, key, doc }) => [
          key,
          b.input(name, 'float32', [1, s * s, inner], `from the image encoder: ${doc}`),
        ]),
      ) as ImageSideValues)
    : undefined;
  const maskInput = noMaskInput
    ? ''
    : b.input('mask_input', 'float32', ['Bm', m, m, 1], 'low-res logits from an earlier prediction (Bm = B or 1)');
  const hasMask = noMaskInput ? '' : b.input('has_mask_input', 'float32', [1], '1 to use mask_input, 0 to ignore it');

  const sparse = b.scope('prompt_encoder', () => {
    // padding point (0, 0) with label -1, one per prompt set
    const batch = b.op('Slice', [b.op('Shape', [labels]), b.i64([0]), b.i64([1])]);
    const padL = b.op('Expand', [b.f32([-1], [1, 1]), b.op('Concat', [batch, b.i64([1])], { axis: 0 })]);
    const padC = b.op('Expand', [b.f32([0, 0], [1, 1, 2]), b.op('Concat', [batch, b.i64([1, 2])], { axis: 0 })]);
    const allC = b.op('Concat', [coords, padC], { axis: 1 });
    const allL = b.op('Concat', [labels, padL], { axis: 1 });
    const gauss = paramInit(b, 'gaussian', P.get('sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix')!);
    const c01 = b.op('Div', [b.op('Add', [allC, b.f32(0.5)]), b.f32(S)]);
    const proj = b.op('Mul', [
      b.op('MatMul', [b.op('Sub', [b.op('Mul', [c01, b.f32(2)]), b.f32(1)]), gauss]),
      b.f32(2 * Math.PI),
    ]);
    const fourier = b.op('Concat', [b.op('Sin', [proj]), b.op('Cos', [proj])], { axis: -1 });
    const isPoint = b.op('Unsqueeze', [
      b.op('Cast', [b.op('Not', [b.op('Equal', [allL, b.f32(-1)])])], { to: 1 }),
      b.i64([-1]),
    ]);
    // rows: label -1 (padding), 0, 1, 2, 3
    const table = tf.tidy(() =>
      tf.concat(
        [
          'not_a_point_embed',
          'point_embeddings.0',
          'point_embeddings.1',
          'point_embeddings.2',
          'point_embeddings.3',
        ].map((k) => P.get(`sam_prompt_encoder.${k}.weight`)!.read()),
        0,
      ),
    );
    const tableInit = b.weight('label_table', hostData(table), table.shape);
    table.dispose();
    const idx = b.op('Cast', [b.op('Add', [allL, b.f32(1)])], { to: 7 });
    const labelEmb = b.op('Gather', [tableInit, idx], { axis: 0 });
    return b.op('Add', [b.op('Mul', [fourier, isPoint]), labelEmb]);
  });

  const dense = b.scope('mask_downscaling', () => {
    const noMask = emitNoMaskEmbed(b, model);
    if (noMaskInput) return noMask;
    const [convs, norms] = [pe.maskConvs, pe.maskNorms];
    let y = emitGelu(b, emitLayerNorm(b, norms[0], emitConv2d(b, convs[0], maskInput)));
    y = emitGelu(b, emitLayerNorm(b, norms[1], emitConv2d(b, convs[1], y)));
    const maskEmb = emitConv2d(b, convs[2], y);
    // has * mask + (1 - has) * no_mask: exact for has in {0, 1}
    const has4 = b.op('Reshape', [hasMask, b.i64([1, 1, 1, 1])]);
    return b.op('Add', [b.op('Mul', [maskEmb, has4]), b.op('Mul', [noMask, b.op('Sub', [b.f32(1), has4])])]);
  });

  const out = b.scope('mask_decoder', () => {
    const tokens0 = tf.tidy(() =>
      tf.concat(
        ['obj_score_token', 'iou_token', 'mask_tokens'].map((k) => Q.get(`sam_mask_decoder.${k}.weight`)!.read()),
        0,
      ),
    );
    const outTokens = b.weight('output_tokens', hostData(tokens0), [1, ...tokens0.shape]);
    tokens0.dispose();
    const batch = b.op('Slice', [b.op('Shape', [sparse]), b.i64([0]), b.i64([1])]);
    const tiled = b.op('Expand', [outTokens, b.op('Concat', [batch, b.i64([1, 1])], { axis: 0 })]);
    const tokens = b.op('Concat', [tiled, sparse], { axis: 1 });
    // one image for all prompt sets: broadcasting in MatMul/Add repeats it
    const src = b.op('Reshape', [b.op('Add', [imageEmbed, dense]), b.i64([-1, s * s, D])]);
    const imagePe = emitImagePe(b, model);
    const [hs, keys] = b.scope('transformer', () =>
      emitTwoWayTransformer(b, md.transformer, src, imagePe, tokens, pre),
    );
    // upscaling: 2x2 stride-2 transposed convs as MatMul + pixel shuffle (as MaskDecoder.upsample2x)
    const up = (x: string, key: string, hw: number, cin: number, cout: number) => {
      const w = paramInit(b, `${key}.w`, Q.get(`sam_mask_decoder.${key}.weight`)!, (t) => {
        const [kh, kw, o, i] = t.shape;
        return tf.reshape(tf.transpose(t, [3, 0, 1, 2]), [i, kh * kw * o]);
      });
      const bias = paramInit(b, `${key}.b`, Q.get(`sam_mask_decoder.${key}.bias`)!, (t) => tf.tile(t, [4]));
      const y = b.op('Add', [b.op('MatMul', [b.op('Reshape', [x, b.i64([-1, hw, hw, cin])]), w]), bias]);
      const t = b.op('Transpose', [b.op('Reshape', [y, b.i64([-1, hw, 2, 2 * cout])])], { perm: [0, 2, 1, 3] });
      return b.op('Reshape', [t, b.i64([-1, 2 * hw, 2 * hw, cout])]);
    };
    const x1 = up(keys, 'output_upscaling.0', s, D, D / 4);
    const y1 = emitGelu(b, emitLayerNorm(b, md.ln1, b.op('Add', [x1, feat1])));
    const upscaled = emitGelu(b, b.op('Add', [up(y1, 'output_upscaling.3', 2 * s, D / 4, D / 8), feat0]));
    const token = (i: number) => b.op('Gather', [hs, b.i64([i], [])], { axis: 1 });
    const hyper = b.op(
      'Concat',
      md.hypernetworks.map((mlp, i) => b.op('Unsqueeze', [emitMlp(b, mlp, token(2 + i)), b.i64([2])])),
      { axis: 2 },
    ); // [B, 32, 4]
    const masks = b.op('MatMul', [b.op('Reshape', [upscaled, b.i64([0, 16 * s * s, D / 8])]), hyper]);
    const masks4 = b.op('Reshape', [masks, b.i64([-1, 4 * s, 4 * s, 4])]);
    const iou = emitMlp(b, md.iouHead, token(1));
    const obj = emitMlp(b, md.objScoreHead!, token(0)); // SAM 2 decoders always have it
    return { masks4, iou, obj };
  });
  b.output(
    'low_res_masks',
    out.masks4,
    'float32',
    ['B', m, m, 4],
    'logits of the 4 mask tokens, NHWC (0: single mask, 1..3: multimask)',
  );
  b.output('iou_predictions', out.iou, 'float32', ['B', 4], 'predicted IoU of each mask');
  b.output('object_score_logits', out.obj, 'float32', ['B', 1], 'object presence logit');
  return {
    name: noMaskInput ? 'prompt_decoder_no_mask' : 'prompt_mask_decoder',
    bytes: b.toBytes(
      `${model.config.name} prompt encoder + mask decoder${noMaskInput ? ', prompts without a mask input' : ''} (sam2-tfjs)`,
    ),
    inputs: b.inputs,
    outputs: b.outputs,
  };
}

/**
 * Memory attention over a memory bank (video tracking): x [N, d] (the frame's features plus
 * 0.1 x their sine encoding, N = (S/16)^2), per layer the bank's rotated keys keys_t_<l> [d, M]
 * (MemoryAttention.bankKeys: cached per memory in TF.js) and the bank's values [M, memDim];
 * returns the conditioned features [N, d]. M is dynamic. RoPE in real arithmetic: x*cos +
 * swap(x)*sin with the grid's tables as constants.
 */
export function buildMemoryAttention(model: Sam2Model): BuiltModel {
  const att = model.video!.memoryAttention;
  const cfg = model.config;
  const d = cfg.neck.dModel;
  const side = cfg.imageSize / cfg.backboneStride;
  const n = side * side;
  const b = new OnnxBuilder('sam2_memory_attention');
  let x = b.input('x', 'float32', [n, d], "the frame's features + 0.1 x their sine encoding, [N, d]");
  const keys = att.layers.map((_, l) =>
    b.input(`keys_t_${l}`, 'float32', [d, 'M'], `layer ${l}: the bank's rotated keys, transposed`),
  );
  const values = b.input(
    'values',
    'float32',
    ['M', cfg.memoryDim],
    "the bank's values (memory features, then pointers)",
  );
  const tables = axialRopeTables(d, side, side);
  const cos = b.weight('rope_cos', tables.cos, [n, d]);
  const sin = b.weight('rope_sin', tables.sin, [n, d]);
  const swapData = new Float32Array(d * d);
  for (let i = 0; i < d; i += 2) {
    swapData[(i + 1) * d + i] = -1;
    swapData[i * d + i + 1] = 1;
  }
  const swap = b.weight('rope_swap', swapData, [d, d]);
  const rotate = (v: string) => b.op('Add', [b.op('Mul', [v, cos]), b.op('Mul', [b.op('MatMul', [v, swap]), sin])]);
  // RoPEAttention.attend: rotated, scaled queries; values averaged before v_proj
  const attend = (name: string, a: RoPEAttention, q: string, keysT: string, vals: string) =>
    b.scope(name, () => {
      const qr = b.op('Mul', [rotate(emitLinear(b, a.qProj, q)), b.f32(1 / Math.sqrt(a.dim))]);
      const p = b.op('Softmax', [b.op('MatMul', [qr, keysT])], { axis: -1 });
      return emitLinear(b, a.outProj, emitLinear(b, a.vProj, b.op('MatMul', [p, vals])));
    });
  att.layers.forEach((layer, l) => {
    b.scope(`layer${l}`, () => {
      const [n1, n2, n3] = layer.norms;
      const h = emitLayerNorm(b, n1, x);
      const selfKeysT = b.op('Transpose', [rotate(emitLinear(b, layer.selfAttn.kProj, h))], { perm: [1, 0] });
      x = b.op('Add', [x, attend('self_attn', layer.selfAttn, h, selfKeysT, h)]);
      x = b.op('Add', [x, attend('cross_attn_image', layer.crossAttnImage, emitLayerNorm(b, n2, x), keys[l], values)]);
      const mlp = emitLinear(b, layer.linear2, emitLinear(b, layer.linear1, emitLayerNorm(b, n3, x), 'relu'));
      x = b.op('Add', [x, mlp]);
    });
  });
  b.output('y', emitLayerNorm(b, att.norm, x), 'float32', [n, d], 'conditioned features [N, d]');
  return {
    name: 'memory_attention',
    bytes: b.toBytes(`${cfg.name} memory attention (sam2-tfjs)`),
    inputs: b.inputs,
    outputs: b.outputs,
  };
}

/**
 * Memory encoder (video tracking): pix_feat [1, s, s, d] (the frame's top features without the
 * no-memory embedding) and mask [1, 16s, 16s, 1] (sigmoid or binarized, scaled) -> the memory
 * features [1, s, s, memDim] before the no-object embedding.
 */
export function buildMemoryEncoder(model: Sam2Model): BuiltModel {
  const enc = model.video!.memoryEncoder;
  const cfg = model.config;
  const d = cfg.neck.dModel;
  const s = cfg.imageSize / cfg.backboneStride;
  const b = new OnnxBuilder('sam2_memory_encoder');
  const pix = b.input('pix_feat', 'float32', [1, s, s, d], "the frame's top-level features, NHWC");
  let m = b.input('mask', 'float32', [1, 16 * s, 16 * s, 1], 'the mask through sigmoid (or binarized), scaled, NHWC');
  for (let i = 0; i < 4; i++) m = emitGelu(b, emitLayerNorm(b, enc.downNorms[i], emitConv2d(b, enc.downConvs[i], m)));
  let x = b.op('Add', [emitConv2d(b, enc.pixFeatProj, pix), emitConv2d(b, enc.downOut, m)]);
  enc.fuser.forEach((blk, i) => {
    const key = `memory_encoder.fuser.layers.${i}`;
    const params = paramsOf(blk);
    x = b.scope(key, () => {
      // depthwise 7x7 conv (NCHW, one group per channel), LayerNorm, pointwise MLP, layer scale
      const k = blk.kernel;
      const p = (k - 1) / 2;
      const dw = b.op(
        'Conv',
        [
          b.op('Transpose', [x], { perm: [0, 3, 1, 2] }),
          paramInit(b, 'dwconv.weight', params.get(`${key}.dwconv.weight`)!, (w) => tf.transpose(w, [2, 3, 0, 1])),
          paramInit(b, 'dwconv.bias', params.get(`${key}.dwconv.bias`)!),
        ],
        { kernel_shape: [k, k], pads: [p, p, p, p], group: blk.dim },
      );
      const y = b.op('Transpose', [dw], { perm: [0, 2, 3, 1] });
      const h = emitLinear(b, blk.pwconv2, emitGelu(b, emitLinear(b, blk.pwconv1, emitLayerNorm(b, blk.norm, y))));
      return b.op('Add', [x, b.op('Mul', [h, paramInit(b, 'gamma', params.get(`${key}.gamma`)!)])]);
    });
  });
  b.output(
    'vision_features',
    emitConv2d(b, enc.outProj, x),
    'float32',
    [1, s, s, cfg.memoryDim],
    'memory features, NHWC',
  );
  return {
    name: 'memory_encoder',
    bytes: b.toBytes(`${cfg.name} memory encoder (sam2-tfjs)`),
    inputs: b.inputs,
    outputs: b.outputs,
  };
}
