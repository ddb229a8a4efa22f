/**
 * Browser stand-in for the ONNX Runtime executor modules (src/onnx/graphs, src/onnx/ort_executor):
 * onnxruntime-node is a Node addon, so in browsers loadSam2 always runs the TF.js executor.
 */
import { Sam2Error } from '../errors';

function unavailable(): never {
  throw new Sam2Error(
    'BACKEND',
    'The ONNX Runtime executor needs Node.js (onnxruntime-node): use executor "tfjs" in browsers.',
  );
}

export const onnxGraphsFor = unavailable;
export class OrtExecutor {
  constructor() {
    unavailable();
  }
}
