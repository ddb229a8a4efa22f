/**
 * Automatic mask generation benchmark: wall time of generate with the default options (32x32
 * points, 64 per batch) on images/truck.jpg (1800x1200) with Hiera-T formula weights (same
 * compute as trained weights), and its split into encoder, decoder batches and post-processing.
 *   npx tsx bench/amg.ts [pointsPerSide]
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend';
import { makeConfig } from '../src/model/config';
import { Sam2Model } from '../src/model/sam2';
import { AutomaticMaskGenerator } from '../src/predictor/automatic_mask_generator';
import { fixturePath } from '../src/testing/fixtures';
import { formulaWeights, loadManifest } from '../src/testing/manifest';

/** The PyTorch reference on the same 2-core machines (shared/PERF-NOTES.md): 16x16 grid on truck.jpg. */
const REFERENCE_16X16_S = 74;

async function main() {
  const pointsPerSide = Number(process.argv[2] ?? 32);
  const info = await initBackend();
  const weights = formulaWeights(loadManifest('sam2.1_hiera_tiny'));
  const model = new Sam2Model(makeConfig('sam2.1', 'tiny'), weights);
  weights.dispose();
  const gen = new AutomaticMaskGenerator(model, { pointsPerSide });
  console.log(`backend ${info.tfBackend}, tfjs ${info.tfjsVersion}; Hiera-T formula weights; ${pointsPerSide}x${pointsPerSide} points, ${gen.options.pointsPerBatch} per batch`);
  const before = tf.memory().numTensors;
  let batches = 0;
  let peakBytes = 0;
  const t0 = performance.now();
  const anns = await gen.generate(fixturePath('images/truck.jpg'), {
    onProgress: (p) => {
      batches = p.done;
      peakBytes = Math.max(peakBytes, tf.memory().numBytes);
    },
  });
  const wall = (performance.now() - t0) / 1000;
  const t = gen.lastTimings;
  const s = (ms: number) => (ms / 1000).toFixed(1);
  console.log(`generate on truck.jpg (1800x1200): ${wall.toFixed(1)} s wall, ${anns.length} masks`);
  console.log(`  encoder ${s(t.encode)} s (1 crop)`);
  console.log(`  decoder batches ${s(t.decode)} s (${batches} batches, ${s(t.decode / Math.max(batches, 1))} s each: decode, upscale to 1800x1200, filters, RLE)`);
  console.log(`  post-processing ${s(t.postprocess)} s (NMS, annotations); other ${(wall - (t.encode + t.decode + t.postprocess) / 1000).toFixed(1)} s (image decode)`);
  console.log(`  peak tf.js bytes seen between batches: ${(peakBytes / 2 ** 20).toFixed(0)} MiB; tensors after: ${tf.memory().numTensors - before} new`);
  const refPoints = 16 * 16;
  console.log(
    `reference (PyTorch, 2 threads): ${REFERENCE_16X16_S} s for 16x16 points; per point: ours ${((wall * 1000) / pointsPerSide ** 2).toFixed(0)} ms, reference ${((REFERENCE_16X16_S * 1000) / refPoints).toFixed(0)} ms`,
  );
  gen.dispose();
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
