/**
 * Both executors side by side on Hiera-T formula weights, alternating runs in one process so
 * a shared machine's load hits both alike. Prints one JSON line per measurement (with
 * `executor`) and the same-run ratios.
 *   npx tsx bench/executors.ts [--runs 3] [--skip-tfjs-encoder]
 */
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { initBackend } from '../src/backend';
import { makeConfig } from '../src/config';
import { Sam2Model } from '../src/model/sam2';
import { SamPredictor } from '../src/predictor/sam_predictor';
import { TfjsExecutor } from '../src/model/executor';
import { OnnxBuilder } from '../src/onnx/builder';
import { buildOnnxGraphs } from '../src/onnx/graphs';
import { OrtExecutor } from '../src/onnx/ort_executor';
import { fixturePath } from '../src/testing/fixtures';
import { formulaWeights, loadManifest } from '../src/testing/manifest';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const args = process.argv.slice(2);
  const runs = Number(args[args.indexOf('--runs') + 1]) || 3;
  const skipTfjsEncoder = args.includes('--skip-tfjs-encoder');
  const info = await initBackend();
  const weights = formulaWeights(loadManifest('sam2.1_hiera_tiny'));
  const model = new Sam2Model(makeConfig('sam2.1', 'tiny'), weights);
  weights.dispose();
  const tfjs = new TfjsExecutor(model);
  const ortExec = await OrtExecutor.create(model, buildOnnxGraphs(model));
  const execs = { tfjs, onnxruntime: ortExec } as const;
  const line = (o: Record<string, unknown>) =>
    console.log(JSON.stringify({ model: 'sam2.1_hiera_tiny', backend: info.tfBackend, ...o }));

  // calibration: a plain ORT MatMul (8.6 GFLOP) alternating with the encodes gives the machine's
  // current matmul rate, so an encode can be compared with ONNX Runtime's peak on a shared machine
  const mb = new OnnxBuilder('matmul');
  mb.output(
    'y',
    mb.op('MatMul', [
      mb.input('a', 'float32', [4096, 1024]),
      mb.weight('b', new Float32Array(1024 * 1024).fill(0.001), [1024, 1024]),
    ]),
    'float32',
    [4096, 1024],
  );
  const mm = await ort.InferenceSession.create(mb.toBytes(), { intraOpNumThreads: ortExec.info.threads });
  const a = new ort.Tensor('float32', new Float32Array(4096 * 1024).fill(1), [4096, 1024]);
  const mmMs: number[] = [];
  const matmul = async () => {
    const t0 = performance.now();
    await mm.run({ a });
    mmMs.push(performance.now() - t0);
  };
  await matmul();
  mmMs.length = 0;

  // encoder: setImage on truck.png, alternating
  const t: Record<string, number[]> = { tfjs: [], onnxruntime: [] };
  const preds: Record<string, SamPredictor> = {};
  for (const name of ['onnxruntime', 'tfjs'] as const) {
    model.executor = execs[name];
    preds[name] = new SamPredictor(model);
    await preds[name].setImage(fixturePath('images/truck.png')); // warm-up
  }
  for (let i = 0; i < runs; i++) {
    for (const name of ['onnxruntime', 'tfjs'] as const) {
      if (name === 'tfjs' && skipTfjsEncoder) continue;
      if (name === 'onnxruntime') await matmul();
      model.executor = execs[name];
      const t0 = performance.now();
      await preds[name].setImage(fixturePath('images/truck.png'));
      t[name].push(performance.now() - t0);
    }
  }
  for (const name of ['onnxruntime', 'tfjs'] as const) {
    if (t[name].length)
      line({
        bench: 'setImage',
        executor: name,
        threads: execs[name].info.threads,
        ms: Math.round(median(t[name])),
        runs: t[name],
      });
  }
  if (t.tfjs.length) console.log(`setImage onnxruntime/tfjs = ${(median(t.onnxruntime) / median(t.tfjs)).toFixed(3)}`);
  // Hiera-T encode ~ 2 x 140 GMAC (shared/PERF-NOTES.md); the matmul is 2 x 4096 x 1024 x 1024 flops
  const matmulGflops = (2 * 4096 * 1024 * 1024) / 1e6 / median(mmMs);
  const encodeGflops = 280 / (median(t.onnxruntime) / 1000);
  line({
    bench: 'ort-matmul-calibration',
    executor: 'onnxruntime',
    gflops: Math.round(matmulGflops),
    encoderGflops: Math.round(encodeGflops),
    ratio: +(encodeGflops / matmulGflops).toFixed(3),
  });
  console.log(
    `encoder at ${(encodeGflops / matmulGflops).toFixed(2)}x ORT's same-run matmul rate; at the issue's 130 GFLOP/s that is ${(280 / ((130 * encodeGflops) / matmulGflops)).toFixed(2)} s`,
  );

  // one click: decoder alone and the whole predict (post-processing in TF.js), alternating
  const p: Record<string, number[]> = { tfjs: [], onnxruntime: [] };
  const d: Record<string, number[]> = { tfjs: [], onnxruntime: [] };
  const coords = tf.tensor3d([[[500, 375]]]);
  const labels = tf.tensor2d([[1]]);
  for (let i = 0; i < 5 * runs; i++) {
    for (const name of ['onnxruntime', 'tfjs'] as const) {
      model.executor = execs[name];
      const pr = preds[name];
      let t0 = performance.now();
      await pr.predict({ pointCoords: [[500 + i, 375]], pointLabels: [1] });
      p[name].push(performance.now() - t0);
      if (name === 'onnxruntime') {
        // the predictor's cached features (private: a bench may peek)
        const st = (pr as unknown as { state: { features: import('../src/model/image_encoder').ImageFeatures } }).state;
        t0 = performance.now();
        const r = await ortExec.decode({ features: st.features, imageIndex: 0, coords, labels, multimaskOutput: true });
        await r!.lowResMasks.data();
        tf.dispose([r!.lowResMasks, r!.ious, r!.objectScoreLogits]);
      } else {
        t0 = performance.now();
        const r = pr.predictTensors(coords, labels, { multimaskOutput: true });
        await r.lowResMasks.data();
        tf.dispose([r.lowResMasks, r.ious, r.objectScoreLogits]);
      }
      d[name].push(performance.now() - t0);
    }
  }
  for (const name of ['onnxruntime', 'tfjs'] as const) {
    line({ bench: 'predict', executor: name, ms: Math.round(median(p[name])), decoderMs: Math.round(median(d[name])) });
  }
  console.log(
    `predict onnxruntime/tfjs = ${(median(p.onnxruntime) / median(p.tfjs)).toFixed(3)}, decoder alone ${(median(d.onnxruntime) / median(d.tfjs)).toFixed(3)}`,
  );
  tf.dispose([coords, labels]);
  for (const pr of Object.values(preds)) pr.dispose();
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
