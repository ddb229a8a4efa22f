/**
 * Inference state of a video: frames (decoded and encoded lazily, features cached with a
 * bound), objects and their prompts, and each object's memory bank. Plain data; the tracking
 * itself lives in model/tracker.ts.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as path from 'path';
import { Sam2Error } from '../errors';
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

  /** The frame's features, encoding it on first use; least recently used ones are evicted. */
  async frameFeatures(frameIdx: number, encode: (img: RgbImage) => FrameFeatures): Promise<FrameFeatures> {
    let f = this.features.get(frameIdx);
    if (f) {
      this.features.delete(frameIdx); // refresh its LRU position
      this.features.set(frameIdx, f);
      return f;
    }
    const img = await this.frames[frameIdx]();
    f = encode(img);
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
  out.memoryKeysT = undefined;
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
