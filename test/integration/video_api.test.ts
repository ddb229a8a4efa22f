import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { expectSam2Error, maskIoU } from '../helpers';
import { tinyWeights } from '../models';
import { makeConfig } from '../../src/config';
import { Sam2Model } from '../../src/model/sam2';
import { VideoPredictor } from '../../src/predictor/video_predictor';
import { Sam2Error } from '../../src/errors';

const W = 48;
const H = 32;

/** A synthetic clip: a bright square moving over a dark gradient. */
function frames(n: number) {
  return Array.from({ length: n }, (_, t) => {
    const data = new Uint8Array(W * H * 3);
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const inside = Math.abs(x - (10 + (t % 20))) < 6 && Math.abs(y - 16) < 6;
        data.fill(inside ? 230 : (x * 3 + y * 2) % 90, (y * W + x) * 3, (y * W + x) * 3 + 3);
      }
    return { data, width: W, height: H };
  });
}

describe('VideoPredictor: API, errors and bounded memory (formula weights at 128 px)', () => {
  let model: Sam2Model;
  let video: VideoPredictor;
  before(() => {
    model = new Sam2Model(makeConfig('sam2.1', 'tiny', 128), tinyWeights());
    video = new VideoPredictor(model, { maxCachedFrames: 4 });
  });
  after(() => model.dispose());

  it('rejects bad prompts, unknown objects, frames out of range and reset states', async () => {
    const state = await video.initState(frames(5));
    await expectSam2Error(
      video.addNewPointsOrBox(state, { frameIdx: 9, objId: 1, points: [[1, 1]], labels: [1] }),
      'INPUT',
      /frameIdx 9 is out of range: the video has 5 frames/,
    );
    await expectSam2Error(
      video.addNewPointsOrBox(state, { frameIdx: 0, objId: 1, points: [[1, 1]], labels: [] }),
      'INPUT',
      /1 points but 0 labels/,
    );
    await expectSam2Error(
      video.addNewMask(state, { frameIdx: 0, objId: 1, mask: new Uint8Array(10) }),
      'INPUT',
      /mask has 10 values but the video is 48x32/,
    );
    await expectSam2Error(() => video.removeObject(state, 7), 'INPUT', /Unknown object id 7/);
    await expectSam2Error(video.propagateInVideo(state).next(), 'STATE', /No object has prompts yet/);
    video.resetState(state);
    await expectSam2Error(
      video.addNewPointsOrBox(state, { frameIdx: 0, objId: 1, points: [[1, 1]], labels: [1] }),
      'STATE',
      /reset or disposed: call initState again/,
    );
    const imageOnly = new Sam2Model(makeConfig('sam2.1', 'tiny', 128), imageOnlyWeights());
    try {
      expect(() => new VideoPredictor(imageOnly)).to.throw(Sam2Error, /image-only/);
    } finally {
      imageOnly.dispose();
    }
  });

  it('addNewMask outputs the given mask; clearAllPromptsInFrame removes the prompt', async () => {
    const state = await video.initState(frames(3));
    const mask = new Uint8Array(W * H);
    for (let y = 10; y < 22; y++) for (let x = 4; x < 16; x++) mask[y * W + x] = 1;
    const r = await video.addNewMask(state, { frameIdx: 0, objId: 5, mask });
    expect(r.objIds).to.deep.equal([5]);
    expect(maskIoU(r.masks[0], mask)).to.be.at.least(0.9);
    const tracked: number[] = [];
    for await (const f of video.propagateInVideo(state)) tracked.push(f.frameIdx);
    expect(tracked).to.deep.equal([0, 1, 2]);
    const cleared = await video.clearAllPromptsInFrame(state, 0, 5);
    expect(cleared.masks[0].length).to.equal(W * H);
    video.removeObject(state, 5);
    expect(state.objIds).to.deep.equal([]);
    video.resetState(state);
  });

  it('keeps tensor count and memory flat over a 200-frame propagation', async function () {
    const state = await video.initState(frames(200));
    await video.addNewPointsOrBox(state, { frameIdx: 0, objId: 1, points: [[10, 16]], labels: [1] });
    await video.addNewPointsOrBox(state, { frameIdx: 0, objId: 2, box: [30, 2, 46, 14] });
    const counts: number[] = [];
    const bytes: number[] = [];
    const t0 = Date.now();
    for await (const f of video.propagateInVideo(state)) {
      counts.push(tf.memory().numTensors);
      bytes.push(tf.memory().numBytes);
      expect(f.masks).to.have.length(2);
    }
    console.log(
      `      200 frames x 2 objects in ${((Date.now() - t0) / 1000).toFixed(1)} s; tensors ${counts[20]} -> ${counts[199]}, bytes ${bytes[20]} -> ${bytes[199]}`,
    );
    expect(counts.length).to.equal(200);
    // once the memory window is full (16 frames), nothing grows
    expect(counts[199]).to.equal(counts[20]);
    expect(bytes[199]).to.equal(bytes[20]);
    const before = tf.memory().numTensors;
    video.resetState(state);
    expect(tf.memory().numTensors).to.be.below(before);
  });
});

function imageOnlyWeights() {
  const { Weights } = require('../../src/weights') as typeof import('../../src/weights');
  const { VIDEO_KEY } = require('../../src/model/sam2') as typeof import('../../src/model/sam2');
  const all = tinyWeights();
  return new Weights(
    all
      .keys()
      .filter((k) => !VIDEO_KEY.test(k))
      .map((k) => [k, all.get(k)]),
  );
}
