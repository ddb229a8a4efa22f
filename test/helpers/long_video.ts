/**
 * The long-video memory check of test/integration/reliability_api.test.ts: one object tracked
 * over `frames` frames at 64 px, recording live tensors, their bytes and the JS heap after each
 * frame. Run in the test process (the default backend: the threaded wasm build on 2+ cores) and,
 * as a script, in a child process on one wasm thread with the memory-attention worker thread
 * (the worker is only used without the threaded build), printing one JSON line.
 */
import * as tf from '@tensorflow/tfjs';
import { tinyWeights } from '../models';
import { makeConfig } from '../../src/config';
import { Sam2Model } from '../../src/model/sam2';
import { VideoPredictor } from '../../src/predictor/video_predictor';
import { initBackend } from '../../src/backend';
import { WORKERS_ENV, parallelMemoryAttentionAvailable } from '../../src/model/memory_attention_parallel';

/** A W x H RGB image: a bright square at (cx, cy) on a gradient. */
export function picture(W: number, H: number, cx: number, cy: number) {
  const data = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const inside = Math.abs(x - cx) < 5 && Math.abs(y - cy) < 5;
      data.fill(inside ? 230 : (x * 3 + y * 2) % 90, (y * W + x) * 3, (y * W + x) * 3 + 3);
    }
  return { data, width: W, height: H };
}

export interface LongVideoResult {
  /** After each frame: live tensors, their bytes, the JS heap in bytes. */
  counts: number[];
  bytes: number[];
  heap: number[];
  /** Whether memory attention could use its worker thread in this process. */
  worker: boolean;
  /** Threads of the wasm build in use. */
  threads: number;
}

export async function trackLongVideo(frames: number): Promise<LongVideoResult> {
  const small = new Sam2Model(makeConfig('sam2.1', 'tiny', 64), tinyWeights());
  const v = new VideoPredictor(small, { maxCachedFrames: 2 });
  const r: LongVideoResult = {
    counts: [],
    bytes: [],
    heap: [],
    worker: parallelMemoryAttentionAvailable(),
    threads: 1,
  };
  try {
    const n = 12;
    const state = await v.initState(Array.from({ length: frames }, (_, t) => picture(n, n, 3 + (t % 6), 6)));
    await v.addNewPointsOrBox(state, { frameIdx: 0, objId: 1, points: [[4, 6]], labels: [1] });
    for await (const f of v.propagateInVideo(state)) {
      r.counts.push(tf.memory().numTensors);
      r.bytes.push(tf.memory().numBytes);
      r.heap.push(process.memoryUsage().heapUsed);
      if (f.masks.length !== 1) throw new Error(`frame ${f.frameIdx}: ${f.masks.length} masks`);
    }
    v.resetState(state);
  } finally {
    v.dispose();
    small.dispose();
  }
  return r;
}

if (require.main === module) {
  // the child: one wasm thread, the memory-attention worker on for every frame size
  process.env[WORKERS_ENV] = '1';
  process.env.SAM2_TFJS_WORKER_MIN_SCORES = '1';
  initBackend()
    .then(async (info) => {
      const r = await trackLongVideo(Number(process.argv[2]));
      r.threads = info.wasmThreads?.threads ?? 1;
      console.log(JSON.stringify(r));
    })
    .catch((e) => {
      console.error(e);
      process.exitCode = 1;
    });
}
