/**
 * sam2-tfjs: SAM 2 / SAM 2.1 (Segment Anything in images and videos) for TensorFlow.js.
 * @packageDocumentation
 */
export { Sam2Error, type Sam2ErrorCode } from './errors';
export { initBackend, backendInfo, BACKEND_ENV, type BackendChoice, type BackendInfo } from './backend';
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
} from './model/config';
export { Weights } from './model/weights';
