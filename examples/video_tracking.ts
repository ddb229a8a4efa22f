/**
 * Video tracking, like the reference's video_predictor_example notebook: click one object and box
 * another on the first frame, track both, write an overlay per frame.
 *   npx tsx examples/video_tracking.ts <frames-dir> [weights-dir]
 */
import * as fs from 'fs';
import * as path from 'path';
import { VideoPredictor, overlayPng } from '../src/index';
import { OUT_DIR, getModel, runExample } from './common';

async function main() {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: npx tsx examples/video_tracking.ts <frames-dir> [weights-dir]');
    process.exit(2);
  }
  const model = await getModel();
  const video = new VideoPredictor(model);
  const state = await video.initState(dir);
  const maxFrames = process.env.SAM2_EXAMPLE_FORMULA === '1' ? 3 : state.numFrames;
  const { width: w, height: h } = state;
  await video.addNewPointsOrBox(state, { frameIdx: 0, objId: 1, points: [[w * 0.22, h * 0.65]], labels: [1] });
  await video.addNewPointsOrBox(state, { frameIdx: 0, objId: 2, box: [w * 0.31, 0, w * 0.52, h * 0.74] });
  const t = Date.now();
  for await (const r of video.propagateInVideo(state, { maxFrameNumToTrack: maxFrames - 1 })) {
    const image = await state.frames[r.frameIdx]();
    fs.writeFileSync(
      path.join(OUT_DIR, `video_${String(r.frameIdx).padStart(5, '0')}.png`),
      await overlayPng(image, r.masks),
    );
    console.log(`frame ${r.frameIdx}: ${r.objIds.length} objects`);
  }
  console.log(`tracked in ${((Date.now() - t) / 1000).toFixed(1)} s`, video.timings);
  video.resetState(state);
  video.dispose();
  model.dispose();
}

runExample(main);
