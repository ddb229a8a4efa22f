/**
 * Benchmarks on the current backend (wasm unless SAM2_TFJS_BACKEND says otherwise; threads as
 * SAM2_TFJS_THREADS says) and executor (SAM2_TFJS_EXECUTOR: tfjs or onnxruntime), with Hiera-T
 * formula weights (same compute as trained weights).
 * Prints one JSON line per stage on stdout, so runs can be compared over time:
 *   {"stage":"set_image","seconds":...,"backend":"wasm","threads":2,...}
 * Stages (all by default, or the ones named):
 *   set_image             SamPredictor.setImage of truck.png decoded to RGB pixels once (the reference
 *                         also times set_image on a decoded array), 1800x1200 -> 1024, median of 3
 *   predict_click_median  predict, one click, 3 masks at 1800x1200, median of 11 (after 3 warm-up calls)
 *   predict_batch         predictBatch of 64 clicks
 *   memory_attention      7 memories + 16 pointers at 1024 px, one object
 *   per_frame             bedroom frames 1-7, 2 objects (a click and a box on frame 0)
 *   generate              AutomaticMaskGenerator, 16x16 points on amg_truck/input.png
 *   generate_defaults     AutomaticMaskGenerator defaults (32x32 points, 64 per batch) on truck.jpg
 *                         (only when named)
 *   npm run bench [-- set_image predict_click_median ...]
 * Timings on shared machines are noisy: compare programs by alternating runs (see
 * docs/DEVELOPING.md), never with figures from another day.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend';
import { makeConfig } from '../src/config';
import { createExecutor } from '../src/load';
import { Sam2Model } from '../src/model/sam2';
import { AutomaticMaskGenerator } from '../src/predictor/automatic_mask_generator';
import { readImage } from '../src/predictor/image_input';
import { SamPredictor } from '../src/predictor/sam_predictor';
import { VideoPredictor } from '../src/predictor/video_predictor';
import type { SpatialMemory } from '../src/model/memory_attention';
import { fixturePath } from '../src/testing/fixtures';
import { formulaWeights, loadManifest } from '../src/testing/manifest';

const STAGES = [
  'set_image',
  'predict_click_median',
  'predict_batch',
  'memory_attention',
  'per_frame',
  'generate',
  'generate_defaults',
] as const;
type Stage = (typeof STAGES)[number];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function times(fn: () => Promise<unknown> | unknown, runs: number, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    t.push((performance.now() - t0) / 1000);
  }
  return t;
}

const round = (s: number) => Math.round(s * 1000) / 1000;

async function main() {
  process.env.SAM2_TFJS_QUIET = '1';
  const asked = process.argv.slice(2);
  for (const a of asked)
    if (!(STAGES as readonly string[]).includes(a)) throw new Error(`unknown stage ${a}; stages: ${STAGES.join(', ')}`);
  // generate_defaults (~2 min) only when named
  const want = (s: Stage) => (asked.length === 0 ? s !== 'generate_defaults' : asked.includes(s));
  const info = await initBackend();
  const weights = formulaWeights(loadManifest('sam2.1_hiera_tiny'));
  const model = new Sam2Model(makeConfig('sam2.1', 'tiny'), weights);
  weights.dispose();
  // SAM2_TFJS_EXECUTOR=onnxruntime runs the heavy parts on ONNX Runtime, as loadSam2 would
  model.executor = await createExecutor(model, undefined);
  const exec = model.executor.info;
  const common = {
    executor: exec.executor,
    backend: info.tfBackend,
    threads: exec.executor === 'tfjs' ? (info.wasmThreads?.threads ?? null) : exec.threads,
    threadsNote: info.wasmThreads?.reason,
    tfjs: info.tfjsVersion,
    model: 'sam2.1_hiera_tiny (formula weights)',
  };
  const print = (stage: Stage, fields: Record<string, unknown>) =>
    console.log(JSON.stringify({ stage, ...fields, ...common }));

  if (want('set_image') || want('predict_click_median') || want('predict_batch')) {
    const predictor = new SamPredictor(model);
    // decoded once, outside the timing: the reference times set_image on a decoded array too
    const image = await readImage(fixturePath('images/truck.png'));
    if (want('set_image')) {
      const t = await times(() => predictor.setImage(image), 3);
      print('set_image', { seconds: round(median(t)), runs: t.map(round), image: 'truck.png 1800x1200 (RGB pixels)' });
    } else {
      await predictor.setImage(image);
    }
    if (want('predict_click_median')) {
      const t = await times(() => predictor.predict({ pointCoords: [[500, 375]], pointLabels: [1] }), 11, 3);
      print('predict_click_median', { seconds: round(median(t)), runs: t.map(round), output: '3 masks 1800x1200' });
    }
    if (want('predict_batch')) {
      const prompts = Array.from({ length: 64 }, (_, i) => ({
        pointCoords: [[(i % 8) * 225 + 100, Math.floor(i / 8) * 150 + 75]],
        pointLabels: [1],
      }));
      const t = await times(() => predictor.predictBatch(prompts, { multimaskOutput: true }), 1, 0);
      print('predict_batch', { seconds: round(t[0]), prompts: 64 });
    }
    predictor.dispose();
  }

  if (want('memory_attention')) {
    // the steady state of tracking at 1024 px: 7 spatial memories (64x64 tokens) and 16 pointers
    const att = model.video!.memoryAttention;
    const [n, m] = [4096, 64];
    const curr = tf.randomNormal([n, 256], 0, 1, 'float32', 1) as tf.Tensor2D;
    const currPos = tf.randomNormal([n, 256], 0, 1, 'float32', 2) as tf.Tensor2D;
    const spatial: SpatialMemory[] = Array.from({ length: 7 }, (_, i) => {
      const features = tf.randomNormal([n, m], 0, 1, 'float32', 10 + i) as tf.Tensor2D;
      const pos = tf.randomNormal([n, m], 0, 1, 'float32', 20 + i) as tf.Tensor2D;
      const keyInput = tf.add(features, pos) as tf.Tensor2D;
      pos.dispose();
      return { features, keyInput, tpos: tf.randomNormal([1, m], 0, 1, 'float32', 30 + i) as tf.Tensor2D };
    });
    const pointers = {
      tokens: tf.randomNormal([64, m], 0, 1, 'float32', 3) as tf.Tensor2D,
      pos: tf.randomNormal([64, m], 0, 1, 'float32', 4) as tf.Tensor2D,
    };
    const t = await times(async () => {
      const out = att.forwardBank(curr, currPos, spatial, pointers);
      await out.data();
      out.dispose();
    }, 2);
    print('memory_attention', { seconds: round(median(t)), runs: t.map(round), memories: 7, pointers: 16 });
    tf.dispose([
      curr,
      currPos,
      pointers.tokens,
      pointers.pos,
      ...spatial.flatMap((s) => [s.features, s.keyInput, s.tpos]),
    ]);
  }

  if (want('per_frame')) {
    const video = new VideoPredictor(model);
    const frames = Array.from({ length: 8 }, (_, i) => fixturePath('videos/bedroom', `0000${i}.png`));
    const state = await video.initState(frames);
    await video.addNewPointsOrBox(state, { frameIdx: 0, objId: 1, points: [[210, 350]], labels: [1] });
    await video.addNewPointsOrBox(state, { frameIdx: 0, objId: 2, box: [300, 0, 500, 400] });
    const perFrame: number[] = [];
    let last = performance.now();
    for await (const r of video.propagateInVideo(state)) {
      if (r.frameIdx > 0) perFrame.push(round((performance.now() - last) / 1000));
      last = performance.now();
    }
    print('per_frame', { seconds: perFrame, median: median(perFrame), frames: '1-7', objects: 2 });
    video.resetState(state);
    video.dispose();
  }

  const amg = async (stage: Stage, pointsPerSide: number, image: string, label: string) => {
    const gen = new AutomaticMaskGenerator(model, { pointsPerSide, pointsPerBatch: 64 });
    const t0 = performance.now();
    const anns = await gen.generate(fixturePath(image));
    const s = (performance.now() - t0) / 1000;
    const t = gen.lastTimings;
    print(stage, {
      seconds: round(s),
      encode: round(t.encode / 1000),
      decode: round(t.decode / 1000),
      postprocess: round(t.postprocess / 1000),
      masks: anns.length,
      points: `${pointsPerSide}x${pointsPerSide}`,
      image: label,
    });
    gen.dispose();
  };
  if (want('generate')) await amg('generate', 16, 'amg_truck/input.png', 'amg_truck/input.png 450x300');
  if (want('generate_defaults')) await amg('generate_defaults', 32, 'images/truck.jpg', 'truck.jpg 1800x1200');
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
