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
} from '../model/tracker';
import type { RgbImage } from './image_input';
import { resizeAntialiasBilinear, upsampleLogits } from '../ops/transforms';
import { preprocessVideoFrame } from './video_frames';
import {
  VideoState,
  disposeObject,
  disposeOutput,
  forgetMemoryKeys,
  openFrames,
  type ObjectState,
  type VideoSource,
} from './video_state';

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

/** A fresh object with no prompts or memories. */
function newObject(id: number): ObjectState {
  return {
    id,
    points: new Map(),
    memory: { cond: new Map(), nonCond: new Map() },
    temp: { cond: new Map(), nonCond: new Map() },
    tracked: new Map(),
  };
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

  private encode = (img: RgbImage): FrameFeatures => {
    const t = Date.now();
    const x = preprocessVideoFrame(img, this.model.config.imageSize);
    try {
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

  private object(state: VideoState, objId: number, create: boolean): ObjectState {
    let o = state.objects.find((x) => x.id === objId);
    if (!o) {
      if (!create) throw new Sam2Error('INPUT', `Unknown object id ${objId}; known ids: [${state.objIds}].`);
      o = {
        id: objId,
        points: new Map(),
        memory: { cond: new Map(), nonCond: new Map() },
        temp: { cond: new Map(), nonCond: new Map() },
        tracked: new Map(),
      };
      state.objects.push(o);
    }
    return o;
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
    const S = this.model.config.imageSize;
    const norm = prompt.normalizeCoords ?? true;
    const toModel = ([x, y]: number[]) => {
      check(Number.isFinite(x) && Number.isFinite(y), `Point [${x}, ${y}] is not finite.`);
      return norm ? [(x / state.width) * S, (y / state.height) * S] : [x * S, y * S];
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
    const known = state.objects.find((x) => x.id === objId);
    const obj = known ?? newObject(objId);
    const old = clear ? undefined : obj.points.get(frameIdx);
    const input = { coords: [...(old?.coords ?? []), ...coords], labels: [...(old?.labels ?? []), ...labs] };

    const isInitCondFrame = !obj.tracked.has(frameIdx);
    const reverse = isInitCondFrame ? false : obj.tracked.get(frameIdx)!.reverse;
    const temp = isInitCondFrame ? obj.temp.cond : obj.temp.nonCond;
    const prev = temp.get(frameIdx) ?? obj.memory.cond.get(frameIdx) ?? obj.memory.nonCond.get(frameIdx);
    const features = await state.frameFeatures(frameIdx, this.encode);
    const out = await this.tracker.step({
      frameIdx,
      isInitCondFrame,
      features,
      points: input,
      maskLogits: prev ? prev.predMasks.map((v) => Math.min(32, Math.max(-32, v))) : undefined,
      memory: obj.memory,
      numFrames: state.numFrames,
      reverse,
      runMemEncoder: false,
    });
    if (!known) state.objects.push(obj);
    obj.points.set(frameIdx, input);
    disposeOutput(temp.get(frameIdx));
    temp.set(frameIdx, out);
    const outs = state.objects.map(
      (o) =>
        (isInitCondFrame ? o.temp.cond : o.temp.nonCond).get(frameIdx) ??
        o.memory.cond.get(frameIdx) ??
        o.memory.nonCond.get(frameIdx),
    );
    return this.videoResult(state, frameIdx, outs, prompt.returnLogits ?? false);
  }

  /** Moves prompted outputs into the memory banks, encoding their memories. */
  private async preflight(state: VideoState): Promise<void> {
    check(state.objects.length > 0, 'No object has prompts yet: add points or a box first.', 'STATE');
    const S = this.model.config.imageSize;
    for (const obj of state.objects) {
      for (const isCond of [false, true]) {
        const temp = isCond ? obj.temp.cond : obj.temp.nonCond;
        const bank = isCond ? obj.memory.cond : obj.memory.nonCond;
        for (const [frameIdx, out] of temp) {
          if (!out.maskmemFeatures) {
            const features = await state.frameFeatures(frameIdx, this.encode);
            const s = Math.sqrt(out.predMasks.length);
            const highRes = tf.tidy(() => upsampleLogits(tf.tensor4d(out.predMasks, [1, s, s, 1]), S, S));
            out.maskmemFeatures = await this.tracker.encodeMemory(features, highRes, out.objectScoreLogit, true);
            highRes.dispose();
          }
          if (bank.get(frameIdx) !== out) disposeOutput(bank.get(frameIdx));
          bank.set(frameIdx, out);
        }
        temp.clear();
      }
      for (const frameIdx of obj.memory.cond.keys()) {
        disposeOutput(obj.memory.nonCond.get(frameIdx));
        obj.memory.nonCond.delete(frameIdx);
      }
    }
  }

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
    await state.queue.run(() => this.preflight(state));
    const n = state.numFrames;
    const reverse = options.reverse ?? false;
    const start = options.startFrameIdx ?? Math.min(...state.objects.flatMap((o) => [...o.memory.cond.keys()]));
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
          if (!out) {
            const features = await state.frameFeatures(frameIdx, this.encode);
            out = await this.tracker.step({
              frameIdx,
              isInitCondFrame: false,
              features,
              memory: obj.memory,
              numFrames: n,
              reverse,
              runMemEncoder: true,
              shared,
            });
            disposeOutput(obj.memory.nonCond.get(frameIdx));
            obj.memory.nonCond.set(frameIdx, out);
          }
          obj.tracked.set(frameIdx, { reverse });
          outs.push(out);
        }
      } finally {
        disposeFrameShared(shared);
      }
      this.forgetUnreachable(state, frameIdx, reverse);
      yield await this.videoResult(state, frameIdx, outs, options.returnLogits ?? false);
    }
  }

  /**
   * Bounded memory: only the most recent num_maskmem - 1 memories and max_obj_ptrs pointers
   * in the tracking direction can be attended to again, so older non-conditioning memories
   * are dropped (their masks stay, for re-prompting), and so are the cached keys of memories
   * that left the num_maskmem window.
   */
  private forgetUnreachable(state: VideoState, frameIdx: number, reverse: boolean): void {
    const { numMaskmem, maxObjPtrsInEncoder } = this.model.config;
    const keep = Math.max(numMaskmem, maxObjPtrsInEncoder);
    for (const obj of state.objects) {
      for (const [t, out] of obj.memory.nonCond) {
        const behind = reverse ? t - frameIdx : frameIdx - t;
        if (behind >= numMaskmem - 1) forgetMemoryKeys(out);
        if (behind > keep) disposeOutput(out);
      }
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
    const known = state.objects.find((x) => x.id === objId);
    const obj = known ?? newObject(objId);
    const isInitCondFrame = !obj.tracked.has(frameIdx);
    const temp = isInitCondFrame ? obj.temp.cond : obj.temp.nonCond;
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
    const out = await this.tracker.maskAsOutput({
      frameIdx,
      isInitCondFrame,
      features,
      memory: obj.memory,
      numFrames: state.numFrames,
      reverse: isInitCondFrame ? false : obj.tracked.get(frameIdx)!.reverse,
      runMemEncoder: false,
      mask: binary,
    });
    if (!known) state.objects.push(obj);
    obj.points.delete(frameIdx);
    disposeOutput(temp.get(frameIdx));
    temp.set(frameIdx, out);
    const outs = state.objects.map(
      (o) =>
        (isInitCondFrame ? o.temp.cond : o.temp.nonCond).get(frameIdx) ??
        o.memory.cond.get(frameIdx) ??
        o.memory.nonCond.get(frameIdx),
    );
    return this.videoResult(state, frameIdx, outs, prompt.returnLogits ?? false);
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
    const obj = this.object(state, objId, false);
    obj.points.delete(frameIdx);
    for (const m of [obj.temp.cond, obj.temp.nonCond]) {
      disposeOutput(m.get(frameIdx));
      m.delete(frameIdx);
    }
    const out = obj.memory.cond.get(frameIdx);
    if (out) {
      obj.memory.cond.delete(frameIdx);
      disposeOutput(obj.memory.nonCond.get(frameIdx));
      obj.memory.nonCond.set(frameIdx, out);
      obj.tracked.delete(frameIdx);
    }
    const isCond = state.objects.some((o) => o.temp.cond.has(frameIdx));
    const outs = state.objects.map(
      (o) =>
        (isCond ? o.temp.cond : o.temp.nonCond).get(frameIdx) ??
        o.memory.cond.get(frameIdx) ??
        o.memory.nonCond.get(frameIdx),
    );
    return this.videoResult(state, frameIdx, outs, false);
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
    const o = this.object(state, objId, false);
    disposeObject(o);
    state.objects.splice(state.objects.indexOf(o), 1);
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
