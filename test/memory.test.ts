import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { caseMasks, caseTensor, expectClose, expectNoLeak, fixturePath, maskIoU, nhwcToNchw } from './helpers';
import { tinyConfig, tinyImageEncoder, tinyImageModel, tinyWeights } from './models';
import { MemoryEncoder } from '../src/model/memory_encoder';
import { SamPredictor } from '../src/predictor/sam_predictor';
import { readImage } from '../src/predictor/image_input';
import { preprocessVideoFrame } from '../src/predictor/video_frames';
import { componentAreas } from '../src/predictor/components';
import { upsampleLogits } from '../src/predictor/transforms';

/**
 * The first memory of video_bedroom, rebuilt from its parts: frame 0's features, the click on
 * object 1 decoded like the video predictor does for a first click (multimask, best IoU), small
 * holes filled, upsampled, binarized and scaled, then the memory encoder.
 */
describe('memory encoder parity on video_bedroom (first memory)', () => {
  it('matches first_memory_encoder_features/pos, and the click mask matches step "a"', async () => {
    const [H, W] = [540, 960];
    const S = 1024;
    const x = preprocessVideoFrame(await readImage(fixturePath('videos/bedroom/00000.png')), S);
    const { backboneFpn } = tinyImageEncoder().forwardImage(x);
    const [s0, s1, top] = backboneFpn;
    const imageEmbed = tf.tidy(() => tf.add(top, tf.reshape(tinyImageEncoder().noMemEmbed, [1, 1, 1, -1])) as tf.Tensor4D);
    const predictor = new SamPredictor(tinyImageModel());
    predictor.setImageFeatures({ imageEmbed, highResFeats: [s0, s1] }, [H, W]);
    const out = tf.tidy(() =>
      predictor.predictTensors(tf.tensor3d([[[(210 / W) * S, (350 / H) * S]]]), tf.tensor2d([[1]], [1, 1], 'int32'), { multimaskOutput: true }),
    );
    const ious = out.ious.dataSync();
    expect(out.objectScoreLogits.dataSync()[0]).to.be.greaterThan(0);
    const best = ious.indexOf(Math.max(...ious));
    const lowRes = tf.tidy(() => tf.squeeze(tf.slice(out.lowResMasks, [0, 0, 0, best], [1, -1, -1, 1]), [0, 3]).dataSync() as Float32Array);
    // fill background holes of <= 8 pixels (8-connected) with 0.1, as fill_holes_in_mask_scores
    const areas = componentAreas(lowRes.map((v) => (v <= 0 ? 1 : 0)), 256, 256);
    const filled = lowRes.map((v, i) => (areas[i] > 0 && areas[i] <= 8 ? 0.1 : v));
    const filledT = tf.tensor4d(filled, [1, 256, 256, 1]);

    const videoMask = tf.tidy(() => tf.greater(upsampleLogits(filledT, H, W), 0).dataSync() as Uint8Array);
    const { masks: refA } = caseMasks('video_bedroom', 'a_masks');
    const iouA = maskIoU(videoMask, refA[0]);
    console.log(`      step a (object 1 click) mask IoU ${iouA.toFixed(5)}`);
    expect(iouA).to.be.at.least(0.995);

    const memEnc = new MemoryEncoder(tinyConfig());
    memEnc.loadFrom(tinyWeights());
    const maskForMem = tf.tidy(() => tf.add(tf.mul(tf.cast(tf.greater(upsampleLogits(filledT, S, S), 0), 'float32'), 20), -10) as tf.Tensor4D);
    await expectNoLeak('memory encoder', () => tf.dispose(memEnc.forward(top, maskForMem).visionFeatures));
    const t0 = Date.now();
    const mem = memEnc.forward(top, maskForMem);
    console.log(`      memory encoder: ${Date.now() - t0} ms`);
    const feats = caseTensor('video_bedroom', 'first_memory_encoder_features');
    expectClose('first_memory_encoder_features', nhwcToNchw(mem.visionFeatures.dataSync(), 1, 64, 64, 64), feats.data, 1e-3, feats.stats.std);
    const pos = caseTensor('video_bedroom', 'first_memory_encoder_pos');
    expectClose('first_memory_encoder_pos', nhwcToNchw(mem.visionPosEnc.dataSync(), 1, 64, 64, 64), pos.data, 1e-3, pos.stats.std);
    tf.dispose([x, ...backboneFpn, imageEmbed, out.lowResMasks, out.ious, out.objectScoreLogits, filledT, maskForMem, mem.visionFeatures]);
    predictor.dispose();
    memEnc.disposeAll();
  });
});
