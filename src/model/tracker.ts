/**
 * The tracking step of SAM 2 (the reference SAM2Base's track_step): condition the frame's
 * features on the memory bank, run the SAM heads, compute the object pointer, and encode a new
 * memory. Per-object outputs are plain data (host masks, small tensors) kept by the caller.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Layer, shapeList, tensorList, type Shape } from '../layers/base';
import { Conv2d, Linear, Mlp } from '../layers/common';
import { resizeAntialiasBilinear } from '../ops/transforms';
import type { Sam2Config } from '../config';
import { MemoryAttention, roundToBfloat16, sine1d, type PointerTokens, type SpatialMemory } from './memory_attention';
import { MemoryEncoder } from './memory_encoder';
import type { Sam2Executor } from './executor';
import { ParallelMemoryAttention, parallelMemoryAttentionAvailable } from './memory_attention_parallel';
import type { ImageEncoder } from './image_encoder';
import type { MaskDecoderOutput } from './mask_decoder';
import type { PromptEncoder } from './prompt_encoder';
import { clampMaskLogits, type SamHeadsInput } from './sam_heads';

/** Logit given to masks of frames where the object is absent. */
export const NO_OBJ_SCORE = -1024;

/** SAM2Base's own parameters. */
export class TrackingParams extends Sam2Layer {
  static className = 'Sam2TrackingParams';
  readonly maskmemTposEnc: tf.LayerVariable;
  readonly noMemPosEnc: tf.LayerVariable;
  readonly noObjPtr: tf.LayerVariable;
  readonly noObjEmbedSpatial?: tf.LayerVariable;
  readonly maskDownsample: Conv2d;
  readonly objPtrProj: Mlp;
  readonly objPtrTposProj?: Linear;

  constructor(readonly config: Sam2Config) {
    super();
    this.remember<typeof TrackingParams>(config);
    const d = config.neck.dModel;
    const m = config.memoryDim;
    this.maskmemTposEnc = this.param('maskmem_tpos_enc', [config.numMaskmem, 1, 1, m]);
    this.noMemPosEnc = this.param('no_mem_pos_enc', [1, 1, d]);
    this.noObjPtr = this.param('no_obj_ptr', [1, d]);
    if (config.noObjEmbedSpatial) this.noObjEmbedSpatial = this.param('no_obj_embed_spatial', [1, m]);
    this.maskDownsample = this.child(new Conv2d('mask_downsample', 1, 1, { kernel: 4, stride: 4 }));
    this.objPtrProj = this.child(new Mlp('obj_ptr_proj', d, d, d, 3));
    if (config.projTposEncInObjPtrs) this.objPtrTposProj = this.child(new Linear('obj_ptr_tpos_proj', d, m));
  }

  /**
   * tf.layers entry: the object pointer, as the tracker makes it. inputs [samOutputToken [B, d],
   * objectScoreLogits [B, 1]]: obj_ptr_proj of the token where the object is present (logit > 0),
   * else no_obj_ptr (0/1 weights select exactly).
   */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [token, score] = tensorList(inputs);
    return tf.tidy(() => {
      const present = tf.cast(tf.greater(score, 0), 'float32');
      const ptr = this.objPtrProj.forward(token);
      return tf.add(tf.mul(ptr, present), tf.mul(this.noObjPtr.read(), tf.sub(1, present)));
    });
  }

  /** [token [B, d], score [B, 1]] -> [B, d]. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return this.objPtrProj.computeOutputShape(shapeList(inputShape)[0]);
  }
}
tf.serialization.registerClass(TrackingParams);

/** One frame's features as the tracker needs them (NHWC, batch 1). */
export interface FrameFeatures {
  highRes: [tf.Tensor4D, tf.Tensor4D];
  /** Top-level features without the no-memory embedding [1, s, s, 256]. */
  top: tf.Tensor4D;
  /** Sine encoding of the top level [1, s, s, 256] (cached by the encoder). */
  topPos: tf.Tensor4D;
}

/** What the tracker keeps per object and frame. */
export interface FrameOutput {
  /** Low-res mask logits (s*4)^2 on the host (the video predictor fills their small holes). */
  predMasks: Float32Array;
  /** Object pointer (256 values), kept on the host. */
  objPtr: Float32Array;
  objectScoreLogit: number;
  /** Memory features [s*s, 64], rounded to bfloat16 precision as the reference stores them. */
  maskmemFeatures?: tf.Tensor2D;
  /** maskmemFeatures plus their position encoding (the keys' input), cached; freed with it. */
  memoryKeyInput?: tf.Tensor2D;
  /** Cache of MemoryAttention.spatialKeys(memoryKeyInput), where the keys are not factored; freed with it. */
  memoryKeysT?: tf.Tensor2D[];
}

export interface ObjectMemory {
  cond: Map<number, FrameOutput>;
  nonCond: Map<number, FrameOutput>;
}

export interface TrackStepInput {
  frameIdx: number;
  isInitCondFrame: boolean;
  features: FrameFeatures;
  /** Points in model-input pixels with labels (box corners as labels 2/3). */
  points?: { coords: number[][]; labels: number[] };
  /** Low-res logits used as the mask prompt (the previous prediction on a corrected frame; clamped here). */
  maskLogits?: Float32Array;
  memory: ObjectMemory;
  numFrames: number;
  reverse: boolean;
  runMemEncoder: boolean;
  /** Work shared by the objects tracked on this frame (the caller frees it: disposeFrameShared). */
  shared?: FrameShared;
}

/** What every object tracked on one frame computes alike, filled by the first of them. */
export interface FrameShared {
  /** Memory attention's layer-0 self-attention on the frame's features. */
  firstSelf?: tf.Tensor2D;
}

export function disposeFrameShared(shared: FrameShared): void {
  shared.firstSelf?.dispose();
  shared.firstSelf = undefined;
}

/** Cumulative wall time of the tracker's stages, in ms. */
export interface TrackerTimings {
  memoryAttention: number;
  decoder: number;
  memoryEncoder: number;
}

/** The parts of the model the tracker uses (a narrow view of Sam2Model, so model/sam2 can own trackers). */
export interface TrackerModel {
  readonly config: Sam2Config;
  readonly imageEncoder: Pick<ImageEncoder, 'noMemEmbed'>;
  readonly promptEncoder: Pick<PromptEncoder, 'maskInputSize'>;
  /** Prompt encoder + mask decoder (Sam2Model.forwardSamHeads). */
  forwardSamHeads(input: SamHeadsInput): MaskDecoderOutput;
  /** The executor, when it runs memory attention and the memory encoder itself (ONNX Runtime). */
  readonly executor?: Pick<Sam2Executor, 'attendMemory' | 'encodeMemory'>;
}

export class Tracker {
  readonly timings: TrackerTimings = { memoryAttention: 0, decoder: 0, memoryEncoder: 0 };
  /** The worker-thread helper: undefined until first needed, null when not used. */
  private parallel?: ParallelMemoryAttention | null;

  constructor(
    readonly model: TrackerModel,
    readonly params: TrackingParams,
    readonly memoryEncoder: MemoryEncoder,
    readonly memoryAttention: MemoryAttention,
  ) {}

  private get config(): Sam2Config {
    return this.model.config;
  }

  /** Features conditioned on the memory bank (or plus the no-memory embedding on an initial frame). */
  private async conditionedFeatures(input: TrackStepInput): Promise<tf.Tensor4D> {
    const { features, frameIdx, memory, reverse, numFrames } = input;
    const [, s] = features.top.shape;
    if (input.isInitCondFrame) {
      return tf.tidy(
        () => tf.add(features.top, tf.reshape(this.model.imageEncoder.noMemEmbed, [1, 1, 1, -1])) as tf.Tensor4D,
      );
    }
    const n = this.config.numMaskmem;
    const memPos = tf.tidy(() => tf.reshape(this.memoryEncoder.positionEncoding, [s * s, -1]) as tf.Tensor2D);
    // [temporal slot, output] of every stored memory this frame attends to
    const stored: [number, FrameOutput][] = [];
    for (const out of memory.cond.values()) stored.push([0, out]);
    for (let tPos = 1; tPos < n; tPos++) {
      const tRel = n - tPos;
      const out = memory.nonCond.get(reverse ? frameIdx + tRel : frameIdx - tRel);
      if (out) stored.push([tPos, out]);
    }
    const withMemory = stored.filter(([, out]) => out.maskmemFeatures);
    const bank = tf.tidy(() => {
      const tposAll = tf.reshape(this.params.maskmemTposEnc.read(), [n, -1]);
      const tpos = withMemory.map(([tPos]) => tf.slice(tposAll, [n - tPos - 1, 0], [1, -1]) as tf.Tensor2D);
      // object pointers: conditioning frames not in the future, then up to 15 recent frames
      const maxPtrs = Math.min(numFrames, this.config.maxObjPtrsInEncoder);
      const sign = reverse ? -1 : 1;
      const ptrs: { pos: number; ptr: Float32Array }[] = [];
      for (const [t, out] of memory.cond) {
        if (reverse ? t >= frameIdx : t <= frameIdx) {
          ptrs.push({
            pos: this.config.useSignedTposEncToObjPtrs ? (frameIdx - t) * sign : Math.abs(frameIdx - t),
            ptr: out.objPtr,
          });
        }
      }
      for (let tDiff = 1; tDiff < maxPtrs; tDiff++) {
        const t = reverse ? frameIdx + tDiff : frameIdx - tDiff;
        if (t < 0 || t >= numFrames) break;
        const out = memory.nonCond.get(t);
        if (out) ptrs.push({ pos: tDiff, ptr: out.objPtr });
      }
      let pointers: [tf.Tensor2D, tf.Tensor2D] | [] = [];
      if (ptrs.length) {
        const m = this.config.memoryDim;
        const d = this.config.neck.dModel;
        const split = d / m;
        let ptrPos: tf.Tensor2D;
        if (this.config.addTposEncToObjPtrs && this.params.objPtrTposProj) {
          const pe = tf.tensor2d(
            sine1d(
              ptrs.map((p) => p.pos / (maxPtrs - 1)),
              d,
            ),
            [ptrs.length, d],
          );
          ptrPos = this.params.objPtrTposProj.forward(pe) as tf.Tensor2D;
        } else {
          ptrPos = tf.zeros([ptrs.length, m]);
        }
        pointers = [
          tf.tensor2d(concatPtrs(ptrs.map((p) => p.ptr)), [ptrs.length * split, m]),
          // each pointer is split into `split` tokens sharing its position
          tf.reshape(tf.broadcastTo(tf.expandDims(ptrPos, 1), [ptrs.length, split, m]), [ptrs.length * split, m]),
        ];
      }
      return {
        curr: tf.reshape(features.top, [s * s, -1]) as tf.Tensor2D,
        currPos: tf.reshape(features.topPos, [s * s, -1]) as tf.Tensor2D,
        tpos,
        pointers,
      };
    });
    // keys of a stored memory are computed once and reused while it stays in the bank; the
    // factored form (this thread, no executor) reads only their input (64 channels, shared by the layers)
    const numKeys = s * s * withMemory.length + (bank.pointers[0]?.shape[0] ?? 0);
    const onExecutor = this.model.executor?.attendMemory !== undefined;
    const worker = onExecutor ? null : this.workerFor(s * s, numKeys);
    const factored = !onExecutor && !worker && this.memoryAttention.usesFactoredKeys(s * s, withMemory.length);
    for (const [, out] of withMemory) {
      out.memoryKeyInput ??= tf.add(out.maskmemFeatures!, memPos) as tf.Tensor2D;
      if (!factored) out.memoryKeysT ??= this.memoryAttention.spatialKeys(out.memoryKeyInput);
    }
    memPos.dispose();
    // features and keys belong to the memory bank; this call owns only what `bank` holds
    const spatial: SpatialMemory[] = withMemory.map(([, out], i) => ({
      features: out.maskmemFeatures!,
      keyInput: out.memoryKeyInput!,
      keysT: out.memoryKeysT,
      tpos: bank.tpos[i],
    }));
    const pointers: PointerTokens | undefined = bank.pointers.length
      ? { tokens: bank.pointers[0], pos: bank.pointers[1] }
      : undefined;
    try {
      const out = await this.attend(bank.curr, bank.currPos, spatial, worker, pointers, input.shared);
      const pix = tf.reshape(out, [1, s, s, -1]) as tf.Tensor4D;
      out.dispose();
      return pix;
    } finally {
      tf.dispose([bank.curr, bank.currPos, ...bank.tpos, ...bank.pointers]);
    }
  }

  /**
   * The worker thread for memory attention of `queries` tokens over `numKeys` keys, or null when
   * it stays on this thread. Small inputs stay: below ~4M attention scores, copying to the worker
   * costs more than it saves (128 px frames ran 10% slower with it, 512 px ran 1.4x faster).
   */
  private workerFor(queries: number, numKeys: number): ParallelMemoryAttention | null {
    // SAM2_TFJS_WORKER_MIN_SCORES lowers the bar (tests run the worker on tiny frames)
    const minScores = typeof process === 'undefined' ? undefined : process.env?.SAM2_TFJS_WORKER_MIN_SCORES; // no process in browsers
    if (queries * numKeys < Number(minScores || 2 ** 22)) return null;
    if (this.parallel === undefined)
      this.parallel = parallelMemoryAttentionAvailable() ? new ParallelMemoryAttention(this.memoryAttention) : null;
    return this.parallel;
  }

  /** Memory attention: on the executor, on `worker` and this thread (one if the worker fails), or here. */
  private async attend(
    curr: tf.Tensor2D,
    currPos: tf.Tensor2D,
    spatial: SpatialMemory[],
    worker: ParallelMemoryAttention | null,
    pointers?: PointerTokens,
    shared?: FrameShared,
  ): Promise<tf.Tensor2D> {
    const onExecutor = this.model.executor?.attendMemory;
    if (onExecutor) {
      // the executor's memory attention (ONNX Runtime); keys come from the TF.js key caches
      const bank = this.memoryAttention.prepareBank(curr, currPos, spatial, pointers);
      try {
        return await onExecutor.call(this.model.executor, bank.x, bank.keysT, bank.values);
      } finally {
        tf.dispose([bank.x, ...bank.keysT, bank.values]);
      }
    }
    if (worker) {
      try {
        return await worker.forwardBank(curr, currPos, spatial, pointers);
      } catch (e) {
        console.warn(`sam2-tfjs: ${(e as Error).message}; memory attention continues on one thread`);
        void worker.dispose();
        this.parallel = null;
      }
    }
    const first = shared ? (shared.firstSelf ??= this.memoryAttention.firstSelfBlock(curr, currPos)) : undefined;
    return this.memoryAttention.forwardBank(curr, currPos, spatial, pointers, first);
  }

  /** Stops the memory-attention worker thread, if one was started. */
  dispose(): void {
    void this.parallel?.dispose();
    this.parallel = undefined;
  }

  /** One tracking step for one object on one frame. */
  async step(input: TrackStepInput): Promise<FrameOutput> {
    const cfg = this.config;
    const S = cfg.imageSize;
    const numPts = input.points ? input.points.labels.length : 0;
    const multimask = numPts <= 1; // multimask_output_in_sam/for_tracking, 0..1 points
    let t = Date.now();
    // no host read to end the timing: the wasm and cpu backends run each op when it is called
    const pix = await this.conditionedFeatures(input);
    this.timings.memoryAttention += Date.now() - t;
    t = Date.now();
    const heads = tf.tidy(() => {
      const ms = this.model.promptEncoder.maskInputSize;
      return this.model.forwardSamHeads({
        imageEmbed: pix,
        highRes: input.features.highRes,
        points: input.points
          ? {
              coords: tf.tensor3d([input.points.coords]),
              labels: tf.tensor2d([input.points.labels], undefined, 'int32'),
            }
          : paddingPoint(),
        maskInput: input.maskLogits ? clampMaskLogits(tf.tensor4d(input.maskLogits, [1, ms, ms, 1])) : undefined,
        multimaskOutput: multimask,
      });
    });
    pix.dispose();
    const score = (await heads.objectScoreLogits.data())[0];
    this.timings.decoder += Date.now() - t;
    const ious = await heads.iouPred.data();
    const best = multimask ? ious.indexOf(Math.max(...ious)) : 0;
    const isObj = score > 0;
    const [, hs, ws] = heads.masks.shape;
    const lowRes = tf.tidy(() => {
      const m = tf.slice(heads.masks, [0, 0, 0, best], [1, hs, ws, 1]) as tf.Tensor4D;
      return isObj ? m.clone() : (tf.fill([1, hs, ws, 1], NO_OBJ_SCORE) as tf.Tensor4D);
    });
    const ptrT = tf.tidy(() => {
      const token = tf.reshape(tf.slice(heads.samTokensOut, [0, best, 0], [1, 1, -1]), [1, -1]);
      const p = this.params.objPtrProj.forward(token) as tf.Tensor2D;
      return isObj ? p : (this.params.noObjPtr.read().clone() as tf.Tensor2D);
    });
    const objPtr = (await ptrT.data()) as Float32Array;
    ptrT.dispose();
    tf.dispose(Object.values(heads));
    let maskmemFeatures: tf.Tensor2D | undefined;
    if (input.runMemEncoder) {
      const highRes = tf.tidy(() => tf.image.resizeBilinear(lowRes, [S, S], false, true) as tf.Tensor4D);
      maskmemFeatures = await this.encodeMemory(input.features, highRes, score, input.points !== undefined);
      highRes.dispose();
    }
    const predMasks = lowRes.dataSync() as Float32Array;
    lowRes.dispose();
    return { predMasks, objPtr, objectScoreLogit: score, maskmemFeatures };
  }

  /**
   * A given mask used directly as the output (the reference's _use_mask_as_output): logits
   * +-10 from the binary mask at the model's resolution (`mask`, S*S values), the object
   * pointer from the SAM heads prompted with the downsampled mask.
   */
  async maskAsOutput(
    input: Omit<TrackStepInput, 'points' | 'maskLogits'> & { mask: Float32Array },
  ): Promise<FrameOutput> {
    const cfg = this.config;
    const S = cfg.imageSize;
    const s = this.model.promptEncoder.maskInputSize;
    const present = input.mask.some((v) => v > 0);
    const high = input.mask.map((v) => v * 20 - 10);
    const predMasks = resizeAntialiasBilinear(high, 1, S, S, s, s);
    const pix = await this.conditionedFeatures(input);
    const ptrT = tf.tidy(() => {
      const o = this.model.forwardSamHeads({
        imageEmbed: pix,
        highRes: input.features.highRes,
        points: paddingPoint(),
        maskInput: this.params.maskDownsample.forward(tf.tensor4d(input.mask, [1, S, S, 1])) as tf.Tensor4D,
        multimaskOutput: false,
      });
      const p = this.params.objPtrProj.forward(
        tf.reshape(tf.slice(o.samTokensOut, [0, 0, 0], [1, 1, -1]), [1, -1]),
      ) as tf.Tensor2D;
      return present ? p : (this.params.noObjPtr.read().clone() as tf.Tensor2D);
    });
    pix.dispose();
    const objPtr = (await ptrT.data()) as Float32Array;
    ptrT.dispose();
    return { predMasks, objPtr, objectScoreLogit: present ? 10 : -10 };
  }

  /** A new memory from a high-res mask (binarized when it came from clicks). */
  async encodeMemory(
    features: FrameFeatures,
    highResMask: tf.Tensor4D,
    objectScore: number,
    fromPoints: boolean,
  ): Promise<tf.Tensor2D> {
    const cfg = this.config;
    const t = Date.now();
    const mask = tf.tidy(() => {
      const binarize = cfg.binarizeMaskFromPtsForMemEnc && fromPoints;
      const m = binarize ? tf.cast(tf.greater(highResMask, 0), 'float32') : tf.sigmoid(highResMask);
      return tf.add(tf.mul(m, cfg.sigmoidScaleForMemEnc), cfg.sigmoidBiasForMemEnc) as tf.Tensor4D;
    });
    let encoded: tf.Tensor4D;
    try {
      const onExecutor = this.model.executor?.encodeMemory;
      encoded = onExecutor
        ? await onExecutor.call(this.model.executor, features.top, mask)
        : this.memoryEncoder.forward(features.top, mask).visionFeatures;
    } finally {
      mask.dispose();
    }
    const feats = tf.tidy(() => {
      let f: tf.Tensor = encoded;
      if (objectScore <= 0 && this.params.noObjEmbedSpatial)
        f = tf.add(f, tf.reshape(this.params.noObjEmbedSpatial.read(), [1, 1, 1, -1]));
      return tf.reshape(f, [-1, cfg.memoryDim]);
    });
    encoded.dispose();
    const rounded = roundToBfloat16((await feats.data()) as Float32Array);
    const shape = feats.shape as [number, number];
    feats.dispose();
    this.timings.memoryEncoder += Date.now() - t;
    return tf.tensor2d(rounded, shape);
  }
}

/** The one "not a point" token the SAM heads get when a frame has no clicks (as the reference pads). */
function paddingPoint() {
  return { coords: tf.zeros([1, 1, 2]) as tf.Tensor3D, labels: tf.tensor2d([[-1]], [1, 1], 'int32') };
}

function concatPtrs(ptrs: Float32Array[]): Float32Array {
  const out = new Float32Array(ptrs.length * (ptrs[0]?.length ?? 0));
  ptrs.forEach((p, i) => out.set(p, i * p.length));
  return out;
}
