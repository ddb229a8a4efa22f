import { tinyConfig, tinyWeights } from '../models';
import { runVideoScript } from '../helpers/video_script';
import { Sam2Model } from '../../src/model/sam2';
import { VideoPredictor } from '../../src/predictor/video_predictor';

describe('VideoPredictor parity on video_bedroom', () => {
  it('runs the whole script: clicks, a box, propagation, a correction, a new object, reverse propagation', async () => {
    const model = new Sam2Model(tinyConfig(), tinyWeights());
    const video = new VideoPredictor(model);
    const t0 = Date.now();
    await runVideoScript(video);
    console.log(`      ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    model.dispose();
  });
});
