/**
 * Benchmarks on the current backend (wasm unless SAM2_TFJS_BACKEND says otherwise), with
 * Hiera-T formula weights (same compute as trained weights). Prints medians after warm-up and
 * ratios to the PyTorch reference measured on the same 2-core machines.
 *   npm run bench [-- encoder|predict|amg|memory|video]
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend';
import { makeConfig } from '../src/config';
import { Sam2Model } from '../src/model/sam2';
import { AutomaticMaskGenerator } from '../src/predictor/automatic_mask_generator';
import { SamPredictor } from '../src/predictor/sam_predictor';
import { VideoPredictor } from '../src/predictor/video_predictor';
import type { SpatialMemory } from '../src/model/memory_attention';
import { ParallelMemoryAttention } from '../src/model/memory_attention_parallel';
import { fixturePath } from '../src/testing/fixtures';
import { formulaWeights, loadManifest } from '../src/testing/manifest';

/** PyTorch 2-thread figures from shared/PERF-NOTES.md and the fixtures. */
const REFERENCE = { encodeS: 9, predictS: 0.4, amg16S: 74 };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function time(fn: () => Promise<unknown> | unknown, runs: number, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  return median(t);
}

async function main() {
  const which = process.argv[2] ?? 'all';
  const info = await initBackend();
  console.log(`backend ${info.tfBackend}, tfjs ${info.tfjsVersion}, Hiera-T formula weights`);
  const weights = formulaWeights(loadManifest('sam2.1_hiera_tiny'));
  const model = new Sam2Model(makeConfig('sam2.1', 'tiny'), weights);
  weights.dispose();

  if (which === 'all' || which === 'encoder') {
    const x = tf.randomNormal([1, 1024, 1024, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const peak: number[] = [];
    const ms = await time(async () => {
      const f = model.imageEncoder.imageFeatures(x);
      await f.imageEmbed.data();
      peak.push(tf.memory().numBytes);
      tf.dispose([f.imageEmbed, ...f.highResFeats]);
    }, 3);
    x.dispose();
    const wasmHeap = info.tfBackend === 'wasm' ? ` (wasm heap ${(((tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length) / 2 ** 30).toFixed(2)} GiB)` : '';
    console.log(`encoder 1024px: ${(ms / 1000).toFixed(2)} s median of 3; ${(ms / 1000 / REFERENCE.encodeS).toFixed(2)}x the PyTorch time${wasmHeap}`);
  }

  if (which === 'all' || which === 'predict') {
    const predictor = new SamPredictor(model);
    await predictor.setImage(fixturePath('images/truck.png'));
    const ms = await time(() => predictor.predict({ pointCoords: [[500, 375]], pointLabels: [1] }), 5);
    console.log(`predict (1 click, 1200x1800 output): ${ms.toFixed(0)} ms; ${(ms / 1000 / REFERENCE.predictS).toFixed(2)}x the PyTorch time`);
    const prompts = Array.from({ length: 64 }, (_, i) => ({ pointCoords: [[(i % 8) * 225 + 100, Math.floor(i / 8) * 150 + 75]], pointLabels: [1] }));
    const msBatch = await time(() => predictor.predictBatch(prompts, { multimaskOutput: true }), 1, 0);
    console.log(`predictBatch 64 points: ${(msBatch / 1000).toFixed(1)} s, ${(64000 / msBatch).toFixed(1)} prompts/s`);
    predictor.dispose();
  }

  if (which === 'all' || which === 'amg') {
    const gen = new AutomaticMaskGenerator(model); // the defaults: 32x32 points
    const t0 = performance.now();
    const anns = await gen.generate(fixturePath('images/truck.jpg'));
    const s = (performance.now() - t0) / 1000;
    const t = gen.lastTimings;
    console.log(
      `AMG 32x32 (defaults) on truck.jpg (1800x1200): ${s.toFixed(1)} s (encode ${(t.encode / 1000).toFixed(1)}, decode ${(t.decode / 1000).toFixed(1)}, post ${(t.postprocess / 1000).toFixed(1)}), ${anns.length} masks; the reference takes ${REFERENCE.amg16S} s for 16x16 (1/4 of the points)`,
    );
    gen.dispose();
  }
  if (which === 'all' || which === 'memory') {
    // the steady state of tracking at 1024 px: 7 spatial memories (64x64 tokens) and 16 pointers
    const att = model.video!.memoryAttention;
    const [n, m] = [4096, 64];
    const curr = tf.randomNormal([n, 256], 0, 1, 'float32', 1) as tf.Tensor2D;
    const currPos = tf.randomNormal([n, 256], 0, 1, 'float32', 2) as tf.Tensor2D;
    const spatial: SpatialMemory[] = Array.from({ length: 7 }, (_, i) => {
      const features = tf.randomNormal([n, m], 0, 1, 'float32', 10 + i) as tf.Tensor2D;
      const pos = tf.randomNormal([n, m], 0, 1, 'float32', 20 + i) as tf.Tensor2D;
      const keysT = att.spatialKeys(features, pos);
      pos.dispose();
      return { features, keysT, tpos: tf.randomNormal([1, m], 0, 1, 'float32', 30 + i) as tf.Tensor2D };
    });
    const pointers = { tokens: tf.randomNormal([64, m], 0, 1, 'float32', 3) as tf.Tensor2D, pos: tf.randomNormal([64, m], 0, 1, 'float32', 4) as tf.Tensor2D };
    const memory = tf.concat([...spatial.map((s) => s.features), pointers.tokens]) as tf.Tensor2D;
    const memoryPos = tf.randomNormal([7 * n + 64, m], 0, 1, 'float32', 5) as tf.Tensor2D;
    const run = async (f: () => tf.Tensor) => {
      const out = f();
      await out.data();
      out.dispose();
    };
    const cold = await time(() => run(() => att.forward(curr, currPos, memory, memoryPos, 64)), 1);
    const cached = await time(() => run(() => att.forwardBank(curr, currPos, spatial, pointers)), 1);
    const keysMs = await time(() => tf.dispose(att.spatialKeys(spatial[0].features, spatial[1].features)), 1);
    const parallel = new ParallelMemoryAttention(att);
    const twoThreads = await time(async () => (await parallel.forwardBank(curr, currPos, spatial, pointers)).dispose(), 1);
    await parallel.dispose();
    console.log(
      `memory attention, 7 memories + 16 pointers at 1024 px: ${(cached / 1000).toFixed(1)} s with cached memory keys, ` +
        `${(cold / 1000).toFixed(1)} s computing them (${(cold / cached).toFixed(2)}x); keys of one new memory ${keysMs.toFixed(0)} ms; ` +
        `${(twoThreads / 1000).toFixed(1)} s on two threads (${(cached / twoThreads).toFixed(2)}x faster than one)`,
    );
    tf.dispose([curr, currPos, memory, memoryPos, pointers.tokens, pointers.pos, ...spatial.flatMap((s) => [s.features, s.tpos, ...s.keysT])]);
  }

  if (which === 'all' || which === 'video') {
    const video = new VideoPredictor(model);
    const frames = Array.from({ length: 8 }, (_, i) => fixturePath('videos/bedroom', `0000${i}.png`));
    const state = await video.initState(frames);
    await video.addNewPointsOrBox(state, { frameIdx: 0, objId: 1, points: [[210, 350]], labels: [1] });
    await video.addNewPointsOrBox(state, { frameIdx: 0, objId: 2, box: [300, 0, 500, 400] });
    const before = { ...video.timings };
    const t0 = performance.now();
    let n = 0;
    const perFrame: string[] = [];
    let last = performance.now();
    for await (const r of video.propagateInVideo(state)) {
      if (r.frameIdx > 0) n++;
      perFrame.push(`${r.frameIdx}: ${((performance.now() - last) / 1000).toFixed(1)}`);
      last = performance.now();
    }
    const total = performance.now() - t0;
    console.log(`video: seconds per frame (2 objects) ${perFrame.join(', ')}`);
    const d = (k: keyof typeof before) => (video.timings[k] - before[k]) / (n * 2);
    console.log(
      `video: ${n} tracked frames x 2 objects in ${(total / 1000).toFixed(1)} s = ${(total / n / 2).toFixed(0)} ms per frame per object ` +
        `(per frame per object: encoder ${d('encoder').toFixed(0)}, memory attention ${d('memoryAttention').toFixed(0)}, decoder ${d('decoder').toFixed(0)}, memory encoder ${d('memoryEncoder').toFixed(0)} ms); ` +
        `reference: ~8 s (2nd frame) to ~30 s (8th frame) per frame with 2 objects`,
    );
    video.resetState(state);
    video.dispose();
  }
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
