/**
 * Image-encoder benchmark: SAM 2.1 Hiera-T (formula weights, same compute as trained ones) at
 * 1024x1024 on the wasm backend unless SAM2_TFJS_BACKEND says otherwise. Prints the median of
 * several full encodes (ImageEncoder.forwardImage: trunk, neck, conv_s0/s1) after a warm-up, its
 * ratio to the PyTorch reference, the trunk/neck split and the peak memory.
 *
 *   npx tsx bench/encoder.ts [--runs N] [--size S] [--profile]
 *
 * --profile adds one profiled encode: time per kernel type and per trunk block (window vs
 * global attention), to see where the time goes.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend';
import { makeConfig } from '../src/config';
import { ImageEncoder } from '../src/model/image_encoder';
import { formulaWeights, loadManifest } from '../src/testing/manifest';

/** SAM 2.1 Hiera-T set_image with PyTorch (tcmalloc, 2 threads) on the same 2-core machines, 2026-12-06: `npm run bench:reference` measures it in the same run. */
const PYTORCH_ENCODE_S = 3.2;
/** Peak resident memory the encoder must stay under. */
const MEMORY_BUDGET_GB = 3;

const GB = 2 ** 30;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Peak resident set size of this process so far (maxRSS is in KiB on Linux). */
const peakRssGb = () => (process.resourceUsage().maxRSS * 1024) / GB;

/** Size of the wasm linear memory, which only grows: the backend's own high-water mark. */
function wasmHeapGb(): number | undefined {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } };
  return b.wasm ? b.wasm.HEAPU8.length / GB : undefined;
}

/** One full encode, waited for; disposes its outputs (the position encodings are cached). */
async function encode(enc: ImageEncoder, x: tf.Tensor4D): Promise<void> {
  const { backboneFpn } = enc.forwardImage(x);
  await Promise.all(backboneFpn.map((t) => t.data()));
  tf.dispose(backboneFpn);
}

/** Trunk and neck(+conv_s0/s1) times of one encode, in ms. */
async function split(enc: ImageEncoder, x: tf.Tensor4D): Promise<{ trunk: number; neck: number }> {
  const t0 = performance.now();
  const stages = enc.forwardTrunk(x);
  await Promise.all(stages.map((t) => t.data()));
  const t1 = performance.now();
  const { features } = enc.forwardNeck(stages);
  const heads = tf.tidy(() => [enc.convS0.forward(features[0]), enc.convS1.forward(features[1])]);
  await Promise.all([...features, ...heads].map((t) => t.data()));
  const t2 = performance.now();
  tf.dispose([...stages, ...features, ...heads]);
  return { trunk: t1 - t0, neck: t2 - t1 };
}

/** Kernel time by kernel name over one encode, and the trunk's time per block. */
async function profile(enc: ImageEncoder, x: tf.Tensor4D): Promise<void> {
  const info = await tf.profile(() => encode(enc, x));
  const byKernel = new Map<string, { ms: number; n: number }>();
  let total = 0;
  for (const k of info.kernels) {
    // ops built from other kernels (fused.matMul, fused.conv2d) are recorded as "<op>__op" around
    // their inner kernel: count only the kernels
    if (k.name.endsWith('__op')) continue;
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    const e = byKernel.get(k.name) ?? { ms: 0, n: 0 };
    e.ms += ms;
    e.n++;
    byKernel.set(k.name, e);
    total += ms;
  }
  console.log(
    `\nkernels (one profiled encode, ${(total / 1000).toFixed(2)} s of kernel time, tensor peak ${(info.peakBytes / GB).toFixed(2)} GiB):`,
  );
  for (const [name, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 15)) {
    console.log(
      `  ${name.padEnd(24)} ${(e.ms / 1000).toFixed(2).padStart(6)} s ${((100 * e.ms) / total).toFixed(1).padStart(5)}%  (${e.n} calls)`,
    );
  }

  // Per block: runs the trunk's own blocks one by one (the same steps as Hiera.forward).
  const trunk = enc.trunk;
  const s = x.shape[1];
  const pos = trunk.positionEmbedding(Math.ceil(s / 4), Math.ceil(s / 4));
  let h = tf.tidy(() => tf.add(trunk.patchEmbed.forward(x), pos) as tf.Tensor4D);
  await h.data();
  console.log('\ntrunk blocks:');
  for (const [i, blk] of trunk.blocks.entries()) {
    const t0 = performance.now();
    const next = blk.forward(h);
    await next.data();
    const ms = performance.now() - t0;
    const o = blk.opts;
    const kind = o.windowSize === 0 ? 'global' : `window ${o.windowSize}`;
    console.log(
      `  block ${String(i).padStart(2)} [${next.shape.slice(1)}] heads ${o.numHeads}, ${kind}${o.qPool ? ', q-pool' : ''}: ${ms.toFixed(0)} ms`,
    );
    h.dispose();
    h = next;
  }
  h.dispose();
}

async function main() {
  const runs = arg('--runs', 3);
  const config = makeConfig('sam2.1', 'tiny', arg('--size', 1024));
  const info = await initBackend(process.env.SAM2_TFJS_BACKEND ? undefined : 'wasm');
  const enc = new ImageEncoder(config);
  const weights = formulaWeights(loadManifest('sam2.1_hiera_tiny'));
  enc.loadFrom(weights);
  weights.dispose();
  const s = config.imageSize;
  const x = tf.randomNormal([1, s, s, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const baseline = tf.memory().numTensors;
  console.log(
    `backend ${info.tfBackend} (tfjs ${info.tfjsVersion}), SAM 2.1 Hiera-T image encoder at ${s}x${s}, ${runs} runs after 1 warm-up`,
  );

  let t0 = performance.now();
  await encode(enc, x);
  console.log(`warm-up encode: ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    t0 = performance.now();
    await encode(enc, x);
    times.push(performance.now() - t0);
  }
  const med = median(times) / 1000;
  console.log(`encode runs: ${times.map((t) => (t / 1000).toFixed(2)).join(', ')} s`);
  const { trunk, neck } = await split(enc, x);
  console.log(`split: trunk ${(trunk / 1000).toFixed(2)} s, neck + conv_s0/s1 ${(neck / 1000).toFixed(2)} s`);
  const leaked = tf.memory().numTensors - baseline;

  if (process.argv.includes('--profile')) await profile(enc, x);

  const rss = peakRssGb();
  const heap = wasmHeapGb();
  console.log(
    `\nencoder ${s}px: ${med.toFixed(2)} s median of ${runs}; ${(med / PYTORCH_ENCODE_S).toFixed(2)}x the PyTorch time (${PYTORCH_ENCODE_S} s)`,
  );
  console.log(
    `peak memory: process RSS ${rss.toFixed(2)} GiB${heap === undefined ? '' : `, wasm heap ${heap.toFixed(2)} GiB`} ` +
      `(budget ${MEMORY_BUDGET_GB} GB: ${rss * GB < MEMORY_BUDGET_GB * 1e9 ? 'ok' : 'EXCEEDED'}); tensors leaked per encode: ${leaked}`,
  );
  x.dispose();
  enc.disposeAll();
  if (rss * GB >= MEMORY_BUDGET_GB * 1e9) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
