/**
 * VideoPredictor: prompt objects on any frame and track them through the video, like the
 * reference SAM2VideoPredictor (per-object version). Each object keeps its own memory bank.
 */
import * as tf from '@tensorflow/tfjs';
import { Sam2Error, check } from '../errors';
import type { Sam2Model } from '../model/sam2';
import type { SamModel } from '../model/sam_model';
import {
  NO_OBJ_SCORE,
  disposeFrameShared,
  type FrameFeatures,
  type FrameOutput,
  type FrameShared,
  type Tracker,
  type TrackStepInput,
} from '../model/tracker';
import type { RgbImage } from './image_input';
import { fillHoles, resizeAntialiasBilinear, toModelCoords, upsampleLogits } from '../ops/transforms';
import { preprocessVideoFrame } from './video_frames';
import { VideoState, openFrames, type VideoSource } from './video_state';

export interface VideoPredictorOptions {
  /** Encoded frames kept in memory (default 16). */
  maxCachedFrames?: number;
}

export interface PointsOrBoxPrompt {
  frameIdx: number;
  objId: number;
  /** [x, y] in video pixels (or [0, 1] with normalizeCoords false). */
  points?: number[][];
  labels?: number[];
  box?: number[];
  clearOldPoints?: boolean;
  normalizeCoords?: boolean;
  /** Also return video-resolution logits. */
  returnLogits?: boolean;
}

export interface VideoFrameResult {
  frameIdx: number;
  objIds: number[];
  /** One mask per object (width*height bytes, 1 inside), in objIds order. */
  masks: Uint8Array[];
  /** Video-resolution logits per object, with returnLogits. */
  logits?: Float32Array[];
}

export interface PropagateOptions {
  startFrameIdx?: number;
  maxFrameNumToTrack?: number;
  reverse?: boolean;
  returnLogits?: boolean;
}

function checkObjId(objId: number): void {
  check(Number.isSafeInteger(objId), `objId must be an integer, got ${objId}.`);
}

function checkNotPropagating(state: VideoState): void {
  if (state.propagating) {
    throw new Sam2Error(
      'STATE',
      'propagateInVideo is running on this video state: finish (or break out of) its loop before other calls on the state.',
    );
  }
}

export class VideoPredictor {
  private readonly tracker: Tracker;
  /** Cumulative frame-encoding time in ms (tracker stages: `timings`). */
  encodeMs = 0;

  readonly model: Sam2Model;

  /** A CONFIG error for SAM 1 models (they have no memory to track with). */
  constructor(
    model: SamModel,
    readonly options: VideoPredictorOptions = {},
  ) {
    if (model.kind === 'sam1') {
      throw new Sam2Error(
        'CONFIG',
        `VideoPredictor needs a SAM 2 model; ${model.config.name} is SAM 1, which cannot track videos (use SamPredictor per frame, or a SAM 2 checkpoint).`,
      );
    }
    this.model = model;
    this.tracker = model.tracker();
  }

  /** Opens a video: a directory of frames named by index, an array of images, or an async iterable. */
  async initState(source: VideoSource): Promise<VideoState> {
    const { frames, width, height } = await openFrames(source);
    return new VideoState(frames, width, height, this.options.maxCachedFrames ?? 16);
  }

  /** Cumulative time per stage, in ms. */
  get timings() {
    return { encoder: this.encodeMs, ...this.tracker.timings };
  }

  private encode = async (img: RgbImage): Promise<FrameFeatures> => {
    const t = Date.now();
    const x = preprocessVideoFrame(img, this.model.config.imageSize);
    try {
      const onExecutor = this.model.executor.frameFeatures;
      if (onExecutor) {
        // the executor's encoder (ONNX Runtime); the sine encoding is the neck's cached one
        const { highRes, top } = await onExecutor.call(this.model.executor, x);
        return { highRes, top, topPos: this.model.imageEncoder.neck.position(top.shape[1], top.shape[2]) };
      }
      // no host read to end the timing: the wasm and cpu backends run each op when it is called
      const { backboneFpn, visionPosEnc } = this.model.imageEncoder.forwardImage(x);
      return { highRes: [backboneFpn[0], backboneFpn[1]], top: backboneFpn[2], topPos: visionPosEnc[2] };
    } finally {
      x.dispose();
      this.encodeMs += Date.now() - t;
    }
  };

  private checkState(state: VideoState): void {
    if (state.disposed) throw new Sam2Error('STATE', 'This video state was reset or disposed: call initState again.');
  }

  private checkFrame(state: VideoState, frameIdx: number): void {
    check(
      Number.isInteger(frameIdx) && frameIdx >= 0 && frameIdx < state.numFrames,
      `frameIdx ${frameIdx} is out of range: the video has ${state.numFrames} frames (0..${state.numFrames - 1}).`,
    );
  }

  /**
   * One frame's inference for one object (the reference's single-frame inference step): the
   * tracker's step, or the given mask as output, then the output mask's small holes filled.
   * Memories are encoded from the unfilled mask inside the step (as the reference's track step
   * does); preflight encodes prompted outputs from the stored, filled one (as its memory encoder
   * run on the consolidated output does).
   */
  private async inferFrame(input: TrackStepInput | (TrackStepInput & { mask: Float32Array })): Promise<FrameOutput> {
    const out = 'mask' in input ? await this.tracker.maskAsOutput(input) : await this.tracker.step(input);
    const s = Math.sqrt(out.predMasks.length);
    out.predMasks = fillHoles(out.predMasks, s, s, this.model.config.fillHoleArea);
    return out;
  }

  /**
   * Calls on one video state run one at a time in call order (they share its memory banks); a
   * call made while propagateInVideo is iterating the same state is refused with a STATE error.
   */
  private serial<T>(state: VideoState, fn: () => Promise<T>): Promise<T> {
    try {
      this.checkState(state);
      checkNotPropagating(state);
    } catch (e) {
      return Promise.reject(e);
    }
    return state.queue.run(() => (this.checkState(state), fn()));
  }

  /** Adds clicks and/or a box for one object on one frame; returns every object's mask there. */
  addNewPointsOrBox(state: VideoState, prompt: PointsOrBoxPrompt): Promise<VideoFrameResult> {
    return this.serial(state, () => this.addNewPointsOrBoxNow(state, prompt));
  }

  private async addNewPointsOrBoxNow(state: VideoState, prompt: PointsOrBoxPrompt): Promise<VideoFrameResult> {
    this.checkState(state);
    const { frameIdx, objId } = prompt;
    this.checkFrame(state, frameIdx);
    const points = prompt.points ?? [];
    const labels = prompt.labels ?? [];
    check(
      points.length === labels.length,
      `${points.length} points but ${labels.length} labels: give one label per point.`,
    );
    checkObjId(objId);
    labels.forEach((l, i) =>
      check(l === 0 || l === 1, `the label of point ${i} must be 1 (foreground) or 0 (background), got ${l}.`),
    );
    check(points.length > 0 || prompt.box, 'Give points with labels, or a box.');
    check(!prompt.box || prompt.box.length === 4, 'box must be [x0, y0, x1, y1].');
    const clear = prompt.clearOldPoints ?? true;
    check(!prompt.box || clear, 'A box must come with clearOldPoints true (the box goes before any clicks).');
    const origHW: [number, number] = (prompt.normalizeCoords ?? true) ? [state.height, state.width] : [1, 1];
    const toModel = ([x, y]: number[]) => {
      check(Number.isFinite(x) && Number.isFinite(y), `Point [${x}, ${y}] is not finite.`);
      return toModelCoords(x, y, origHW, this.model.config.imageSize);
    };
    const coords: number[][] = [];
    const labs: number[] = [];
    if (prompt.box) {
      coords.push(toModel(prompt.box.slice(0, 2)), toModel(prompt.box.slice(2, 4)));
      labs.push(2, 3);
    }
    points.forEach((p, i) => {
      coords.push(toModel(p));
      labs.push(labels[i]);
    });
    // a new object joins the state only when its first prompt succeeds (a failed call changes nothing)
    const obj = state.objectOrNew(objId);
    const old = clear ? undefined : obj.points.get(frameIdx);
    const input = { coords: [...(old?.coords ?? []), ...coords], labels: [...(old?.labels ?? []), ...labs] };

    const isInitCondFrame = state.isInitCondFrame(obj, frameIdx);
    const prev = state.output(obj, frameIdx, isInitCondFrame);
    const features = await state.frameFeatures(frameIdx, this.encode);
    const out = await this.inferFrame({
      frameIdx,
      isInitCondFrame,
      features,
      points: input,
      maskLogits: prev?.predMasks,
      memory: obj.memory,
      numFrames: state.numFrames,
      reverse: isInitCondFrame ? false : obj.tracked.get(frameIdx)!.reverse,
      runMemEncoder: false,
    });
    state.addObject(obj);
    obj.points.set(frameIdx, input);
    state.setPromptOutput(obj, frameIdx, isInitCondFrame, out);
    return this.videoResult(state, frameIdx, state.outputs(frameIdx, isInitCondFrame), prompt.returnLogits ?? false);
  }

  /** A prompted output's memory, encoded from its stored mask (upsampled to the model's size). */
  private encodePromptMemory = async (state: VideoState, frameIdx: number, out: FrameOutput): Promise<tf.Tensor2D> => {
    const S = this.model.config.imageSize;
    const features = await state.frameFeatures(frameIdx, this.encode);
    const s = Math.sqrt(out.predMasks.length);
    const highRes = tf.tidy(() => upsampleLogits(tf.tensor4d(out.predMasks, [1, s, s, 1]), S, S));
    try {
      return await this.tracker.encodeMemory(features, highRes, out.objectScoreLogit, true);
    } finally {
      highRes.dispose();
    }
  };

  /** Tracks every object through the video, yielding each frame's masks. */
  async *propagateInVideo(state: VideoState, options: PropagateOptions = {}): AsyncGenerator<VideoFrameResult> {
    this.checkState(state);
    checkNotPropagating(state);
    // options are checked before anything changes (an out-of-range start used to leave encoded memories behind)
    if (options.startFrameIdx !== undefined) this.checkFrame(state, options.startFrameIdx);
    const maxNum = options.maxFrameNumToTrack ?? state.numFrames;
    check(Number.isInteger(maxNum) && maxNum >= 0, `maxFrameNumToTrack must be a non-negative integer, got ${maxNum}.`);
    state.propagating = true;
    try {
      yield* this.propagateNow(state, options, maxNum);
    } finally {
      state.propagating = false;
    }
  }

  private async *propagateNow(
    state: VideoState,
    options: PropagateOptions,
    maxNum: number,
  ): AsyncGenerator<VideoFrameResult> {
    // waits for calls queued before it; later calls are refused until it ends
    await state.queue.run(() => state.preflight((frameIdx, out) => this.encodePromptMemory(state, frameIdx, out)));
    const n = state.numFrames;
    const reverse = options.reverse ?? false;
    const start = options.startFrameIdx ?? state.firstCondFrame();
    this.checkFrame(state, start);
    const order: number[] = [];
    if (reverse) {
      const end = Math.max(start - maxNum, 0);
      if (start > 0) for (let f = start; f >= end; f--) order.push(f);
    } else {
      const end = Math.min(start + maxNum, n - 1);
      for (let f = start; f <= end; f++) order.push(f);
    }
    for (const frameIdx of order) {
      this.checkState(state); // resetState between two frames
      const outs: FrameOutput[] = [];
      const shared: FrameShared = {};
      try {
        for (const obj of state.objects) {
          let out = obj.memory.cond.get(frameIdx);
          if (out) obj.tracked.set(frameIdx, { reverse });
          else {
            const features = await state.frameFeatures(frameIdx, this.encode);
            out = await this.inferFrame({
              frameIdx,
              isInitCondFrame: false,
              features,
              memory: obj.memory,
              numFrames: n,
              reverse,
              runMemEncoder: true,
              shared,
            });
            state.setTrackedOutput(obj, frameIdx, reverse, out);
          }
          outs.push(out);
        }
      } finally {
        disposeFrameShared(shared);
      }
      state.forgetUnreachable(frameIdx, reverse, this.model.config.numMaskmem, this.model.config.maxObjPtrsInEncoder);
      yield await this.videoResult(state, frameIdx, outs, options.returnLogits ?? false);
    }
  }

  private async videoResult(
    state: VideoState,
    frameIdx: number,
    outs: (FrameOutput | undefined)[],
    withLogits: boolean,
  ): Promise<VideoFrameResult> {
    const { width: w, height: h } = state;
    const s = Math.sqrt(outs.find((o) => o)?.predMasks.length ?? 65536);
    const planar = new Float32Array(outs.length * s * s);
    outs.forEach((o, i) =>
      o ? planar.set(o.predMasks, i * s * s) : planar.fill(NO_OBJ_SCORE, i * s * s, (i + 1) * s * s),
    );
    const up = tf.tidy(() => upsampleLogits(tf.tensor4d(planar, [outs.length, s, s, 1]), h, w));
    const data = (await up.data()) as Float32Array;
    up.dispose();
    const masks = outs.map((_, i) =>
      Uint8Array.from(data.subarray(i * h * w, (i + 1) * h * w), (v) => (v > 0 ? 1 : 0)),
    );
    const logits = withLogits ? outs.map((_, i) => data.slice(i * h * w, (i + 1) * h * w)) : undefined;
    return { frameIdx, objIds: state.objIds, masks, logits };
  }

  /**
   * Gives an object's mask on a frame (width*height values, non-zero inside). As in the
   * reference, the mask itself becomes the output on that frame (no SAM decoding), and the
   * object pointer comes from the SAM heads prompted with the downsampled mask.
   */
  addNewMask(
    state: VideoState,
    prompt: { frameIdx: number; objId: number; mask: ArrayLike<number>; returnLogits?: boolean },
  ): Promise<VideoFrameResult> {
    return this.serial(state, () => this.addNewMaskNow(state, prompt));
  }

  private async addNewMaskNow(
    state: VideoState,
    prompt: { frameIdx: number; objId: number; mask: ArrayLike<number>; returnLogits?: boolean },
  ): Promise<VideoFrameResult> {
    this.checkState(state);
    checkObjId(prompt.objId);
    const { frameIdx, objId, mask } = prompt;
    this.checkFrame(state, frameIdx);
    check(
      mask.length === state.width * state.height,
      `mask has ${mask.length} values but the video is ${state.width}x${state.height} (${state.width * state.height}).`,
    );
    const obj = state.objectOrNew(objId);
    const isInitCondFrame = state.isInitCondFrame(obj, frameIdx);
    const features = await state.frameFeatures(frameIdx, this.encode);
    const S = this.model.config.imageSize;
    const resized = resizeAntialiasBilinear(
      Float32Array.from(mask, (v) => (v ? 1 : 0)),
      1,
      state.height,
      state.width,
      S,
      S,
    );
    const binary = resized.map((v) => (v >= 0.5 ? 1 : 0));
    const out = await this.inferFrame({
      frameIdx,
      isInitCondFrame,
      features,
      memory: obj.memory,
      numFrames: state.numFrames,
      reverse: isInitCondFrame ? false : obj.tracked.get(frameIdx)!.reverse,
      runMemEncoder: false,
      mask: binary,
    });
    state.addObject(obj);
    obj.points.delete(frameIdx);
    state.setPromptOutput(obj, frameIdx, isInitCondFrame, out);
    return this.videoResult(state, frameIdx, state.outputs(frameIdx, isInitCondFrame), prompt.returnLogits ?? false);
  }

  /** Removes one object's prompts on a frame; a prompted frame that was tracked becomes a tracked frame again. */
  clearAllPromptsInFrame(state: VideoState, frameIdx: number, objId: number): Promise<VideoFrameResult> {
    return this.serial(state, () => this.clearAllPromptsInFrameNow(state, frameIdx, objId));
  }

  private async clearAllPromptsInFrameNow(
    state: VideoState,
    frameIdx: number,
    objId: number,
  ): Promise<VideoFrameResult> {
    this.checkState(state);
    this.checkFrame(state, frameIdx);
    const isCond = state.clearPrompts(state.object(objId), frameIdx);
    return this.videoResult(state, frameIdx, state.outputs(frameIdx, isCond), false);
  }

  /** Removes an object and everything tracked for it. */
  removeObject(state: VideoState, objId: number): void {
    this.checkState(state);
    checkNotPropagating(state);
    check(
      !state.queue.busy,
      'removeObject: another call on this video state is still running; await it first.',
      'STATE',
    );
    state.removeObject(objId);
  }

  /** Forgets every object, prompt and memory; the state can no longer be used. */
  resetState(state: VideoState): void {
    state.dispose();
  }

  /**
   * Stops the memory-attention worker thread (started on the first tracked frame when the wasm
   * backend runs on a multi-core machine). States and the model stay usable; a later call starts
   * a new worker.
   */
  dispose(): void {
    this.tracker.dispose();
  }
}
