import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend';
import { formulaWeights, loadManifest } from '../src/testing/manifest';
import { makeConfig } from '../src/model/config';
import { Sam2Model } from '../src/model/sam2';
import { VideoPredictor } from '../src/predictor/video_predictor';
(async () => {
  await initBackend('wasm');
  const size = Number(process.argv[2]);
  const model = new Sam2Model(makeConfig('sam2.1', 'tiny', size), formulaWeights(loadManifest('sam2.1_hiera_tiny')));
  const video = new VideoPredictor(model, { maxCachedFrames: 2 });
  const W = 16, H = 16;
  const frames = Array.from({ length: 60 }, (_, t) => ({ data: new Uint8Array(W * H * 3).fill(t % 200), width: W, height: H }));
  const state = await video.initState(frames);
  await video.addNewPointsOrBox(state, { frameIdx: 0, objId: 1, points: [[8, 8]], labels: [1] });
  let t0 = Date.now(); let i = 0;
  for await (const f of video.propagateInVideo(state)) { if (++i === 20) t0 = Date.now(); }
  console.log(size, process.env.SAM2_TFJS_WORKER_MIN_SCORES, 'ms/frame', (Date.now() - t0) / 40, tf.memory().numTensors);
  video.dispose();
})();
