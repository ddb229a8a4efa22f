/**
 * Run in a child process by test/wasm_threads.test.ts (the wasm build is chosen once per
 * process): decodes and tracks at 256 px with formula weights and prints the backend info and
 * a SHA-256 of every output (a click; 2 frames x 2 objects), so the threaded and
 * single-threaded builds can be compared.
 */
import * as crypto from 'crypto';
import { initBackend } from '../../src/backend';
import { makeConfig } from '../../src/config';
import { Sam2Model } from '../../src/model/sam2';
import { SamPredictor } from '../../src/predictor/sam_predictor';
import { VideoPredictor } from '../../src/predictor/video_predictor';
import { fixturePath } from '../../src/testing/fixtures';
import { formulaWeights, loadManifest } from '../../src/testing/manifest';

async function main() {
  const info = await initBackend('wasm');
  if (process.argv.includes('--info-only')) return console.log(JSON.stringify({ wasmThreads: info.wasmThreads }));
  const weights = formulaWeights(loadManifest('sam2.1_hiera_tiny'));
  const model = new Sam2Model(makeConfig('sam2.1', 'tiny', 256), weights);
  weights.dispose();
  const hash = crypto.createHash('sha256');
  const add = (a: ArrayBufferView) => hash.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  const predictor = new SamPredictor(model);
  await predictor.setImage(fixturePath('images/truck.png'));
  const r = await predictor.predict({ pointCoords: [[500, 375]], pointLabels: [1] });
  [...r.lowResLogits, ...r.masks, r.scores].forEach(add);
  const image = hash.copy().digest('hex');
  predictor.dispose();
  const video = new VideoPredictor(model);
  const state = await video.initState([0, 1].map((i) => fixturePath('videos/bedroom', `0000${i}.png`)));
  await video.addNewPointsOrBox(state, { frameIdx: 0, objId: 1, points: [[210, 350]], labels: [1] });
  await video.addNewPointsOrBox(state, { frameIdx: 0, objId: 2, box: [300, 0, 500, 400] });
  for await (const f of video.propagateInVideo(state, { returnLogits: true })) (f.logits ?? []).forEach(add);
  video.resetState(state);
  video.dispose();
  model.dispose();
  console.log(JSON.stringify({ wasmThreads: info.wasmThreads, image, all: hash.digest('hex') }));
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
