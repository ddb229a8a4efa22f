/**
 * sam2-tfjs/internals: the model's components and layers, for users who build on the
 * architecture itself (custom pipelines, research, serialization). Not covered by the
 * stability promise of the main entry.
 * @packageDocumentation
 */
export { Weights } from './weights';
export { Sam2Model, VIDEO_KEY } from './model/sam2';
export { ImageEncoder, type ImageFeatures, type BackboneOutput } from './model/image_encoder';
export { Sam1Model } from './model/sam1/sam1';
export { Sam1ImageEncoder, type Sam1ImageFeatures } from './model/sam1/image_encoder';
export { Hiera } from './model/hiera';
export { FpnNeck } from './model/fpn_neck';
export { PromptEncoder, type PointPrompt, type PromptEmbeddings } from './model/prompt_encoder';
export {
  MaskDecoder,
  SAM1_MASK_DECODER,
  SAM2_MASK_DECODER,
  type MaskDecoderInput,
  type MaskDecoderOutput,
  type MaskDecoderVariant,
} from './model/mask_decoder';
export { MemoryEncoder } from './model/memory_encoder';
export { MemoryAttention } from './model/memory_attention';
export { Tracker, TrackingParams, type TrackerModel } from './model/tracker';
export { VideoState } from './predictor/video_state';
export { Sam2Layer } from './layers/base';
export { Linear, LayerNorm, Conv2d, Mlp, gelu } from './layers/common';
export { Attention } from './layers/attention';
export { RoPEAttention } from './layers/rope_attention';
export { MultiScaleBlock } from './layers/hiera_block';
export { VitBlock } from './layers/vit_block';
export { CXBlock } from './layers/cx_block';
export { TwoWayTransformer, TwoWayAttentionBlock } from './layers/two_way_transformer';
