/**
 * sam2-tfjs for browsers: the entry of dist/browser/sam2-tfjs.mjs (scripts/build_browser.js).
 * The same API as the Node entry except what needs a file system (porting and downloading
 * checkpoints: port in Node, then serve the folder); images are also URLs, DOM images and
 * Blobs; PNG helpers return Uint8Array; `tf` is the bundle's own tf.js (call `tf.setBackend` on
 * it to choose a backend yourself).
 * @packageDocumentation
 */
export * as tf from '@tensorflow/tfjs';
export { Sam2Error, type Sam2ErrorCode } from '../errors';
export {
  initBackend,
  backendInfo,
  setWasmPaths,
  BACKEND_ENV,
  type BackendChoice,
  type BackendInfo,
  type BackendName,
} from './backend';
export {
  makeConfig,
  configFromName,
  detectConfig,
  MODEL_NAMES,
  type Sam2Config,
  type HieraConfig,
  type NeckConfig,
  type Generation,
  type SizeName,
} from '../config';
export { Sam2Model, VIDEO_KEY } from '../model/sam2';
export { Sam1Model } from '../model/sam1/sam1';
export type { SamModel, ModelKind } from '../model/sam_model';
export {
  makeSam1Config,
  sam1ConfigFromName,
  detectSam1Config,
  isSam1Config,
  SAM1_MODEL_NAMES,
  type Sam1Config,
  type Sam1SizeName,
  type VitConfig,
} from '../config_sam1';
export { executorInfo, EXECUTOR_ENV, type ExecutorChoice, type ExecutorInfo } from '../executor';
export { loadSam2, type LoadSam2Options } from '../load';
export type { ImageFeatures, BackboneOutput } from '../model/image_encoder';
export type { PointPrompt } from '../model/prompt_encoder';
export {
  SamPredictor,
  type SamPredictorOptions,
  type PredictOptions,
  type PredictResult,
  type PredictTensors,
} from '../predictor/sam_predictor';
export { readImage, type ImageInput, type RawImage, type RgbImage } from './image_input';
export { readPortedWeights, type ReadPortedOptions } from '../io/ported';
export {
  AutomaticMaskGenerator,
  type AutomaticMaskGeneratorOptions,
  type MaskAnnotation,
  type OutputMode,
  type GenerateProgress,
  type GenerateTimings,
} from '../predictor/automatic_mask_generator';
export {
  maskToRle,
  rleToMask,
  areaFromRle,
  cocoEncodeRle,
  cocoDecodeRle,
  type UncompressedRle,
  type CocoRle,
} from '../predictor/amg/rle';
export { batchedNms } from '../predictor/amg/nms';
export {
  maskToPng,
  overlayPng,
  maskToImageData,
  overlayImageData,
  maskColor,
  type OverlayOptions,
  type RgbaImage,
} from './masks';
export {
  VideoPredictor,
  type VideoPredictorOptions,
  type PointsOrBoxPrompt,
  type VideoFrameResult,
  type PropagateOptions,
} from '../predictor/video_predictor';
export type { VideoState, VideoSource } from '../predictor/video_state';
