/**
 * Inference state of a video: frames (decoded and encoded lazily, features cached with a
 * bound), objects and their prompts, each object's memory bank, and the bookkeeping on them
 * (output lookups, consolidation of prompted outputs, forgetting unreachable memories). The
 * tracking itself lives in model/tracker.ts; VideoPredictor drives both.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as path from 'path';
import { Sam2Error, check } from '../errors';
import type { FrameFeatures, FrameOutput, ObjectMemory } from '../model/tracker';
import { readImage, type ImageInput, type RgbImage } from './image_input';
import { SerialQueue } from './serial_queue';

/** Prompts and memory of one tracked object. */
export interface ObjectState {
  id: number;
  points: Map<number, { coords: number[][]; labels: number[] }>;
  memory: ObjectMemory;
  /** Outputs of prompted frames not yet consolidated into the memory (by is-conditioning). */
  temp: { cond: Map<number, FrameOutput>; nonCond: Map<number, FrameOutput> };
  /** Frames this object has outputs on, with the direction they were tracked in. */
  tracked: Map<number, { reverse: boolean }>;
}

export class VideoState {
  readonly objects: ObjectState[] = [];
  private readonly features = new Map<number, FrameFeatures>();
  disposed = false;
  /** Calls on this state, one at a time (see VideoPredictor). */
  readonly queue = new SerialQueue();
  /** True while a propagateInVideo loop runs on this state. */
  propagating = false;

  constructor(
    readonly frames: (() => Promise<RgbImage>)[],
    readonly width: number,
    readonly height: number,
    readonly maxCachedFrames: number,
  ) {}

  get numFrames(): number {
    return this.frames.length;
  }

  get objIds(): number[] {
    return this.objects.map((o) => o.id);
  }

  /** The object with this id; an INPUT error naming the known ids when there is none. */
  object(objId: number): ObjectState {
    const o = this.objects.find((x) => x.id === objId);
    if (!o) throw new Sam2Error('INPUT', `Unknown object id ${objId}; known ids: [${this.objIds}].`);
    return o;
  }

  /**
   * The object with this id, or a fresh one (no prompts or memories) that joins the state only
   * through `addObject`, once its first prompt has succeeded (a failed call changes nothing).
   */
  objectOrNew(objId: number): ObjectState {
    return (
      this.objects.find((x) => x.id === objId) ?? {
        id: objId,
        points: new Map(),
        memory: { cond: new Map(), nonCond: new Map() },
        temp: { cond: new Map(), nonCond: new Map() },
        tracked: new Map(),
      }
    );
  }

  /** Adds an object made by objectOrNew (no-op when it is already in the state). */
  addObject(obj: ObjectState): void {
    if (!this.objects.includes(obj)) this.objects.push(obj);
  }

  /** Removes an object and frees everything tracked for it. */
  removeObject(objId: number): void {
    const o = this.object(objId);
    disposeObject(o);
    this.objects.splice(this.objects.indexOf(o), 1);
  }

  /**
   * An object's current output on a frame: a prompted one not yet consolidated (conditioning
   * or not, as asked), else the memory bank's.
   */
  output(obj: ObjectState, frameIdx: number, isCond: boolean): FrameOutput | undefined {
    return (
      (isCond ? obj.temp.cond : obj.temp.nonCond).get(frameIdx) ??
      obj.memory.cond.get(frameIdx) ??
      obj.memory.nonCond.get(frameIdx)
    );
  }

  /** Every object's output on a frame, in objIds order (undefined where an object has none). */
  outputs(frameIdx: number, isCond: boolean): (FrameOutput | undefined)[] {
    return this.objects.map((o) => this.output(o, frameIdx, isCond));
  }

  /** Whether the frame is an initial conditioning frame for the object (not tracked before). */
  isInitCondFrame(obj: ObjectState, frameIdx: number): boolean {
    return !obj.tracked.has(frameIdx);
  }

  /** Stores a prompted output until the next preflight, replacing the frame's earlier one. */
  setPromptOutput(obj: ObjectState, frameIdx: number, isCond: boolean, out: FrameOutput): void {
    const temp = isCond ? obj.temp.cond : obj.temp.nonCond;
    disposeOutput(temp.get(frameIdx));
    temp.set(frameIdx, out);
  }

  /** Stores a tracked (non-conditioning) output in the memory bank, replacing the frame's earlier one. */
  setTrackedOutput(obj: ObjectState, frameIdx: number, reverse: boolean, out: FrameOutput): void {
    disposeOutput(obj.memory.nonCond.get(frameIdx));
    obj.memory.nonCond.set(frameIdx, out);
    obj.tracked.set(frameIdx, { reverse });
  }

  /**
   * Removes one object's prompts on a frame: its prompted outputs are dropped, and a
   * conditioning output becomes the frame's tracked output again. Returns whether another
   * object still has a conditioning prompt output there.
   */
  clearPrompts(obj: ObjectState, frameIdx: number): boolean {
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
    return this.objects.some((o) => o.temp.cond.has(frameIdx));
  }

  /**
   * Before tracking: moves prompted outputs into the memory banks, encoding the memories they
   * lack with `encodeMemory`, and drops tracked outputs of frames that are now conditioning.
   */
  async preflight(encodeMemory: (frameIdx: number, out: FrameOutput) => Promise<tf.Tensor2D>): Promise<void> {
    check(this.objects.length > 0, 'No object has prompts yet: add points or a box first.', 'STATE');
    for (const obj of this.objects) {
      for (const isCond of [false, true]) {
        const temp = isCond ? obj.temp.cond : obj.temp.nonCond;
        const bank = isCond ? obj.memory.cond : obj.memory.nonCond;
        for (const [frameIdx, out] of temp) {
          out.maskmemFeatures ??= await encodeMemory(frameIdx, out);
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

  /** The first conditioning frame of any object (where tracking starts by default). */
  firstCondFrame(): number {
    return Math.min(...this.objects.flatMap((o) => [...o.memory.cond.keys()]));
  }

  /**
   * Bounded memory: only the most recent numMaskmem - 1 memories and maxObjPtrs pointers in
   * the tracking direction can be attended to again, so older non-conditioning memories are
   * dropped (their masks stay, for re-prompting), and so are the cached keys of memories that
   * left the numMaskmem window.
   */
  forgetUnreachable(frameIdx: number, reverse: boolean, numMaskmem: number, maxObjPtrs: number): void {
    const keep = Math.max(numMaskmem, maxObjPtrs);
    for (const obj of this.objects) {
      for (const [t, out] of obj.memory.nonCond) {
        const behind = reverse ? t - frameIdx : frameIdx - t;
        if (behind >= numMaskmem - 1) forgetMemoryKeys(out);
        if (behind > keep) disposeOutput(out);
      }
    }
  }

  /** The frame's features, encoding it on first use; least recently used ones are evicted. */
  async frameFeatures(frameIdx: number, encode: (img: RgbImage) => Promise<FrameFeatures>): Promise<FrameFeatures> {
    let f = this.features.get(frameIdx);
    if (f) {
      this.features.delete(frameIdx); // refresh its LRU position
      this.features.set(frameIdx, f);
      return f;
    }
    const img = await this.frames[frameIdx]();
    f = await encode(img);
    this.features.set(frameIdx, f);
    while (this.features.size > this.maxCachedFrames) {
      const [oldest, old] = this.features.entries().next().value as [number, FrameFeatures];
      tf.dispose([...old.highRes, old.top]);
      this.features.delete(oldest);
    }
    return f;
  }

  /** Frees every tensor the state holds. */
  dispose(): void {
    for (const f of this.features.values()) tf.dispose([...f.highRes, f.top]);
    this.features.clear();
    for (const o of this.objects) disposeObject(o);
    this.objects.length = 0;
    this.disposed = true;
  }
}

export function disposeOutput(out: FrameOutput | undefined): void {
  if (!out) return;
  forgetMemoryKeys(out);
  out.maskmemFeatures?.dispose();
  out.maskmemFeatures = undefined;
}

/** Frees the cached attention keys of a memory (recomputed if it is attended to again). */
export function forgetMemoryKeys(out: FrameOutput): void {
  if (out.memoryKeysT) tf.dispose(out.memoryKeysT);
  out.memoryKeyInput?.dispose();
  out.memoryKeysT = undefined;
  out.memoryKeyInput = undefined;
}

export function disposeObject(o: ObjectState): void {
  for (const m of [o.memory.cond, o.memory.nonCond, o.temp.cond, o.temp.nonCond]) {
    for (const out of m.values()) disposeOutput(out);
    m.clear();
  }
}

/** A directory of frames named by their index (00000.jpg, ...), an array of images, or an async iterable. */
export type VideoSource = string | ImageInput[] | AsyncIterable<ImageInput>;

/** Lazy frame loaders for a source, plus the video size (from the first frame). */
export async function openFrames(
  source: VideoSource,
): Promise<{ frames: (() => Promise<RgbImage>)[]; width: number; height: number }> {
  let loaders: (() => Promise<RgbImage>)[];
  if (typeof source === 'string') {
    if (!fs.existsSync(source) || !fs.statSync(source).isDirectory()) {
      throw new Sam2Error('INPUT', `Video source "${source}" is not a directory of frames.`);
    }
    // JPEG frames as the reference loads them; PNG frames when there are no JPEGs
    const all = fs.readdirSync(source);
    const jpegs = all.filter((n) => /^\d+\.jpe?g$/i.test(n));
    const names = (jpegs.length ? jpegs : all.filter((n) => /^\d+\.png$/i.test(n))).sort(
      (a, b) => parseInt(a, 10) - parseInt(b, 10),
    );
    if (!names.length) throw new Sam2Error('INPUT', `No frames named like 00000.jpg in ${source}.`);
    loaders = names.map((n) => () => readImage(path.join(source, n)));
  } else if (Array.isArray(source)) {
    loaders = source.map((img) => () => readImage(img));
  } else {
    const all: RgbImage[] = [];
    for await (const img of source) all.push(await readImage(img));
    loaders = all.map((img) => () => Promise.resolve(img));
  }
  if (!loaders.length) throw new Sam2Error('INPUT', 'The video has no frames.');
  const first = await loaders[0]();
  // every frame must have the first one's size (masks and prompts are in video pixels)
  const sized = loaders.map((load, i) => async () => {
    const img = await load();
    if (img.width !== first.width || img.height !== first.height) {
      throw new Sam2Error(
        'INPUT',
        `Frame ${i} is ${img.width}x${img.height} but the video is ${first.width}x${first.height}: give frames of one size.`,
      );
    }
    return img;
  });
  return { frames: sized, width: first.width, height: first.height };
}
