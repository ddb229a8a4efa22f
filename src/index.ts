/**
 * sam2-tfjs: SAM 2 / SAM 2.1 (Segment Anything in images and videos), and SAM 1 (ViT-B/L/H)
 * for images, for TensorFlow.js.
 * The main entry holds what users use: loaders, predictors, the mask generator, helpers,
 * errors and types. Model components and layers are in `sam2-tfjs/internals`.
 * @packageDocumentation
 */
export { Sam2Error, type Sam2ErrorCode } from './errors';
export {
  initBackend,
  backendInfo,
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
} from './config';
export { Sam2Model, VIDEO_KEY } from './model/sam2';
export { Sam1Model } from './model/sam1/sam1';
export type { SamModel, ModelKind } from './model/sam_model';
export {
  makeSam1Config,
  sam1ConfigFromName,
  detectSam1Config,
  isSam1Config,
  SAM1_MODEL_NAMES,
  type Sam1Config,
  type Sam1SizeName,
  type VitConfig,
} from './config_sam1';
export { loadSam2, type LoadSam2Options } from './load';
export type { ImageFeatures, BackboneOutput } from './model/image_encoder';
export type { PointPrompt } from './model/prompt_encoder';
export {
  executorInfo,
  EXECUTOR_ENV,
  type ExecutorChoice,
  type ExecutorInfo,
  type ExecutorOptions,
  type ExecutionProvider,
} from './executor';
export type { Sam2Executor } from './model/executor';
export {
  SamPredictor,
  type SamPredictorOptions,
  type PredictOptions,
  type PredictResult,
  type PredictTensors,
} from './predictor/sam_predictor';
export { readImage, type ImageInput, type RawImage, type RgbImage } from './predictor/image_input';
export { portCheckpoint, type PortOptions, type PortResult } from './io/port';
export { readPortedWeights, type ReadPortedOptions } from './io/ported';
export { readCheckpoint, type Checkpoint } from './io/torch_checkpoint';
export {
  AutomaticMaskGenerator,
  type AutomaticMaskGeneratorOptions,
  type MaskAnnotation,
  type OutputMode,
  type GenerateProgress,
  type GenerateTimings,
  type GenerateStats,
} from './predictor/automatic_mask_generator';
export {
  maskToRle,
  rleToMask,
  areaFromRle,
  cocoEncodeRle,
  cocoDecodeRle,
  type UncompressedRle,
  type CocoRle,
} from './predictor/amg/rle';
export { batchedNms } from './predictor/amg/nms';
export {
  maskToPng,
  overlayPng,
  maskToImageData,
  overlayImageData,
  maskColor,
  type OverlayOptions,
  type RgbaImage,
} from './viz/masks';
export {
  downloadCheckpoint,
  checkpointUrl,
  DOWNLOAD_BASE_ENV,
  DOWNLOADABLE_MODELS,
  type DownloadOptions,
} from './io/download';
export { generateForFiles, type GenerateForFilesOptions } from './batch/generate';
export {
  enqueueFiles,
  runWorker,
  DEFAULT_QUEUE_NAME,
  type EnqueueFilesOptions,
  type RunWorkerOptions,
  type WorkerEvent,
  type WorkerSummary,
} from './batch/queue';
export type { Sa1bRecord, Sa1bAnnotation, BatchAmgOptions } from './batch/sa1b';
export type { BatchProgress, BatchImageResult, BatchSummary } from './batch/types';
export {
  VideoPredictor,
  type VideoPredictorOptions,
  type PointsOrBoxPrompt,
  type VideoFrameResult,
  type PropagateOptions,
} from './predictor/video_predictor';
export type { VideoState, VideoSource } from './predictor/video_state';
