/**
 * SAM 1 ViT image-encoder benchmark (formula weights, same compute as trained ones) at
 * 1024x1024 on the wasm backend unless SAM2_TFJS_BACKEND says otherwise. Prints wall time and
 * this process's CPU time per encode (on a shared machine the CPU time is the steadier figure:
 * wasm runs on one thread, so on a quiet machine wall ~= CPU), and on wasm the heap size (wasm
 * memory only grows, so its size is the peak so far) beside the largest tf.memory() seen
 * between blocks.
 *
 *   npx tsx bench/sam1_encoder.ts [--model vit_b|vit_l|vit_h] [--runs N] [--size S]
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend';
import { makeSam1Config, type Sam1SizeName } from '../src/config_sam1';
import { Sam1Model } from '../src/model/sam1/sam1';
import { formulaWeights, loadManifest } from '../src/testing/manifest';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

async function main() {
  const size = arg('--model', 'vit_b') as Sam1SizeName;
  const runs = Number(arg('--runs', '1'));
  const px = Number(arg('--size', '1024'));
  const info = await initBackend((process.env.SAM2_TFJS_BACKEND as 'wasm') || 'wasm');
  const weights = formulaWeights(loadManifest(`sam_${size}`));
  const model = new Sam1Model(makeSam1Config(size, px), weights);
  weights.dispose();
  const x = tf.randomNormal([1, px, px, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  console.log(
    `SAM 1 ${size} encoder at ${px} px on ${info.tfBackend}, ${(model.countParams() / 1e6).toFixed(0)}M params`,
  );
  const wasm = (tf.backend() as any).wasm as { HEAPU8: Uint8Array } | undefined;
  const gb = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  const heap = () => (wasm ? `, wasm heap ${gb(wasm.HEAPU8.length)}` : '');
  console.log(`  model built: tensors ${gb(tf.memory().numBytes)}${heap()}`);
  for (let r = 0; r < runs; r++) {
    let peakBytes = 0;
    const cpu0 = process.cpuUsage();
    const t0 = Date.now();
    const y = model.imageEncoder.forward(x, () => (peakBytes = Math.max(peakBytes, tf.memory().numBytes)));
    await y.data();
    const wall = (Date.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    y.dispose();
    console.log(
      `  run ${r + 1}: wall ${wall.toFixed(1)} s, CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s, ` +
        `tensors between blocks <= ${gb(peakBytes)}${heap()}`,
    );
  }
  x.dispose();
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
