/**
 * Bad input, leaks and concurrent calls on the public API (formula weights at small input
 * sizes, tiny images): every failure a Sam2Error, numTensors back to its baseline, calls on one
 * predictor or video state queued in call order.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as jpegJs from 'jpeg-js';
import * as os from 'os';
import * as path from 'path';
import { expectSam2Error, fixturePath } from '../helpers';
import { tinyWeights } from '../models';
import { Sam2Error } from '../../src/errors';
import { makeConfig } from '../../src/config';
import { Sam2Model } from '../../src/model/sam2';
import { AutomaticMaskGenerator } from '../../src/predictor/automatic_mask_generator';
import { jpegMemoryLimitMB, jpegSize, readImage } from '../../src/predictor/image_input';
import { SamPredictor } from '../../src/predictor/sam_predictor';
import { VideoPredictor } from '../../src/predictor/video_predictor';
import { LongVideoResult, picture, trackLongVideo } from '../helpers/long_video';
import { backendInfo } from '../../src/backend';
import { THREADS_ENV } from '../../src/wasm_threads';

/** What SamPredictor keeps per image: 3 feature maps + the decoder's per-image precompute (src and 3 first-block projections). */
const CACHED_PER_IMAGE = 3 + 4;

describe('reliability: images, concurrency and validation (formula weights at 128 px)', () => {
  let model: Sam2Model;
  before(() => {
    model = new Sam2Model(makeConfig('sam2.1', 'tiny', 128), tinyWeights());
  });
  after(() => model.dispose());

  it('readImage: a tensor is not leaked; null, numbers, empty, negative sizes and 0..1 floats are INPUT errors', async () => {
    const t = tf.tensor3d(picture(40, 30, 10, 10).data, [30, 40, 3], 'int32');
    const before = tf.memory().numTensors;
    const img = await readImage(t);
    expect([img.width, img.height]).to.deep.equal([40, 30]);
    expect(tf.memory().numTensors).to.equal(before);
    await expectSam2Error(readImage(null as never), 'INPUT', /Unsupported image null/);
    await expectSam2Error(readImage(42 as never), 'INPUT', /Unsupported image number/);
    await expectSam2Error(
      readImage({ data: new Uint8Array(0), width: 0, height: 0 }),
      'INPUT',
      /width and height must be positive integers, got 0x0/,
    );
    await expectSam2Error(
      readImage({ data: new Uint8Array(12), width: -2, height: 2 }),
      'INPUT',
      /positive integers, got -2x2/,
    );
    const unit = tf.tidy(() => tf.div(tf.cast(t, 'float32'), 255) as tf.Tensor3D);
    await expectSam2Error(readImage(unit), 'INPUT', /values are all in 0\.\.1 .* multiply it by 255/);
    tf.dispose([t, unit]);
    expect(tf.memory().numTensors).to.equal(before - 1);
  });

  it('JPEGs: the decoder limit grows with the image (48-50 MP photos) up to a documented 100 MP cap', async () => {
    const jpg = fs.readFileSync(fixturePath('images/truck.jpg'));
    const size = jpegSize(jpg)!;
    expect(size).to.deep.equal({ width: 1800, height: 1200 });
    // jpeg-js's default 512 MB stops at ~35 MP; a 50 MP photo needs ~800 MB (4:2:0) to ~950 MB (4:4:4)
    expect(jpegMemoryLimitMB(8160, 6120)).to.be.within(1000, 1300);
    expect(jpegMemoryLimitMB(100, 100)).to.equal(512);
    expect((await readImage(jpg)).width).to.equal(1800);
    // a 12000x9000 header: refused before decoding, saying what happened
    const big = Buffer.from(jpg);
    const sof = big.indexOf(Buffer.from([0xff, 0xc0]));
    big.writeUInt16BE(9000, sof + 5);
    big.writeUInt16BE(12000, sof + 7);
    await expectSam2Error(
      readImage(big),
      'IMAGE',
      /12000x9000 JPEG \(108 MP\), more than the 100 MP sam2-tfjs decodes: downscale it first/,
    );
  });

  it("a real 50 MP JPEG (8160x6120, a phone photo's size) decodes and segments", async () => {
    // a smooth pattern, so JPEG's loss stays small and pixels can be checked
    const [W, H] = [8160, 6120];
    const value = (x: number, y: number) => [(x >> 5) & 255, (y >> 5) & 255, ((x + y) >> 6) & 255];
    const rgba = Buffer.alloc(W * H * 4, 255);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) rgba.set(value(x, y), (y * W + x) * 4);
    const bytes = jpegJs.encode({ data: rgba, width: W, height: H }, 75).data;
    const img = await readImage(bytes);
    expect([img.width, img.height]).to.deep.equal([W, H]);
    for (const [x, y] of [
      [100, 100],
      [4000, 3000],
      [8000, 6000],
    ]) {
      const at = (y * W + x) * 3;
      const got = Array.from(img.data.subarray(at, at + 3));
      const want = value(x, y);
      got.forEach((v, c) => expect(Math.abs(v - want[c]), `pixel ${x},${y} channel ${c}`).to.be.at.most(12));
    }
    const p = new SamPredictor(model);
    const base = tf.memory().numTensors;
    await p.setImage(img);
    const r = await p.predict({ pointCoords: [[4000, 3000]], pointLabels: [1], multimaskOutput: false });
    expect([r.width, r.height]).to.deep.equal([W, H]);
    p.dispose();
    expect(tf.memory().numTensors).to.equal(base);
  });

  it('SamPredictor: setImage(tensor) and a tensor maskInput leak nothing; predictTensors checks shapes', async () => {
    const p = new SamPredictor(model);
    const base = tf.memory().numTensors;
    const t = tf.tensor3d(picture(40, 30, 10, 10).data, [30, 40, 3], 'int32');
    await p.setImage(t);
    await p.setImage(t);
    const withImage = tf.memory().numTensors;
    expect(withImage).to.equal(base + 1 + CACHED_PER_IMAGE); // the caller's tensor + one image's cache
    const r = await p.predict({ pointCoords: [[10, 10]], pointLabels: [1] });
    const mask = tf.tensor(r.lowResLogits[0]);
    await p.predict({ pointCoords: [[10, 10]], pointLabels: [1], maskInput: mask });
    expect(tf.memory().numTensors).to.equal(withImage + 1);
    await expectSam2Error(
      p.predict({ pointCoords: [[10, 10]], pointLabels: [7] }),
      'INPUT',
      /the label of point 0 must be 1 \(foreground\) or 0 \(background\), got 7/,
    );
    const c = tf.zeros([1, 2]);
    const l = tf.zeros([1, 1]);
    await expectSam2Error(
      () => p.predictTensors(c as tf.Tensor3D, l as tf.Tensor2D),
      'INPUT',
      /coords must be \[B, N, 2\], got \[1,2\]/,
    );
    const c3 = tf.zeros([2, 1, 2]);
    await expectSam2Error(
      () => p.predictTensors(c3 as tf.Tensor3D, l as tf.Tensor2D),
      'INPUT',
      /labels must be \[2, 1\] to match coords, got \[1,1\]/,
    );
    tf.dispose([mask, c, l, c3, t]);
    p.dispose();
    expect(tf.memory().numTensors).to.equal(base);
  });

  it('SamPredictor: concurrent calls run in call order (predict after setImage waits for it; racing setImage leaks nothing)', async () => {
    const p = new SamPredictor(model);
    const base = tf.memory().numTensors;
    const a = picture(40, 30, 10, 10);
    const b = picture(24, 20, 12, 10);
    const [, , r1, , r2] = await Promise.all([
      p.setImage(a),
      p.setImage(b),
      p.predict({ pointCoords: [[12, 10]], pointLabels: [1] }), // sees b, the image set just before it
      p.setImage(a),
      p.predictBatch([{ box: [2, 2, 20, 20] }, { pointCoords: [[5, 5]], pointLabels: [1] }]),
    ]);
    expect([r1.width, r1.height]).to.deep.equal([24, 20]);
    expect(r2.map((r) => r.width)).to.deep.equal([40, 40]);
    expect(tf.memory().numTensors).to.equal(base + CACHED_PER_IMAGE); // one image's cache
    // a failed setImage leaves the previous image set
    await expectSam2Error(p.setImage(Buffer.from('not an image')), 'IMAGE', /Cannot decode image bytes/);
    expect((await p.predict({ pointCoords: [[5, 5]], pointLabels: [1] })).width).to.equal(40);
    p.dispose();
    expect(tf.memory().numTensors).to.equal(base);
    // several predictors sharing one model at once give exactly the sequential results
    const run = async (q: SamPredictor, img: typeof a) => (
      await q.setImage(img),
      q.predict({ pointCoords: [[10, 10]], pointLabels: [1] })
    );
    const seq = [await run(new SamPredictor(model), a), await run(new SamPredictor(model), b)];
    const ps = [new SamPredictor(model), new SamPredictor(model)];
    const par = await Promise.all([run(ps[0], a), run(ps[1], b)]);
    par.forEach((r, i) => {
      expect(Array.from(r.scores)).to.deep.equal(Array.from(seq[i].scores));
      expect(Buffer.from(r.lowResLogits[0].buffer).equals(Buffer.from(seq[i].lowResLogits[0].buffer))).to.equal(true);
    });
    ps.forEach((q) => q.dispose());
  });

  it('AutomaticMaskGenerator: pointsPerSide 0, negative or fractional is a CONFIG error; lastStats says where candidates went', async () => {
    for (const v of [0, -4, 2.5]) {
      expect(() => new AutomaticMaskGenerator(model, { pointsPerSide: v }), String(v)).to.throw(
        Sam2Error,
        /pointsPerSide must be a positive integer/,
      );
    }
    const gen = new AutomaticMaskGenerator(model, { pointsPerSide: 2, predIouThresh: 0, stabilityScoreThresh: 0 });
    const before = tf.memory().numTensors;
    const anns = await gen.generate(picture(40, 30, 10, 10));
    expect(tf.memory().numTensors).to.equal(before);
    const s = gen.lastStats;
    expect(s.candidates).to.equal(12);
    expect(s.kept).to.equal(anns.length);
    expect(anns.length).to.be.greaterThan(0);
    expect(s.belowPredIou + s.belowStability + s.nearCropEdge + s.nmsDuplicates + s.kept).to.equal(s.candidates);
    // two generate calls at once on one generator: each as if it ran alone
    const other = picture(32, 24, 20, 12);
    const alone = await gen.generate(other);
    const [x, y] = await Promise.all([gen.generate(picture(40, 30, 10, 10), {}), gen.generate(other)]);
    expect(x).to.deep.equal(anns);
    expect(y).to.deep.equal(alone);
    gen.dispose();
  });
});

describe('reliability: video state under failures and concurrent calls (128 px)', () => {
  let model: Sam2Model;
  let video: VideoPredictor;
  const W = 24;
  const H = 16;
  const frames = (n: number) => Array.from({ length: n }, (_, t) => picture(W, H, 6 + t, 8));
  before(async () => {
    model = new Sam2Model(makeConfig('sam2.1', 'tiny', 128), tinyWeights());
    video = new VideoPredictor(model, { maxCachedFrames: 2 });
    // warm up: the tracker keeps a few constant tensors made on first use
    const state = await video.initState(frames(2));
    await video.addNewPointsOrBox(state, { frameIdx: 0, objId: 1, points: [[6, 8]], labels: [1] });
    for await (const _ of video.propagateInVideo(state));
    video.resetState(state);
  });
  after(() => {
    video.dispose();
    model.dispose();
  });

  it('a failed addNewPointsOrBox leaves the state as it was; bad labels, object ids and options are INPUT errors that change nothing', async () => {
    const base = tf.memory().numTensors;
    const state = await video.initState([...frames(3), Buffer.from('not a frame'), picture(W + 2, H, 4, 4)]);
    await expectSam2Error(
      video.addNewPointsOrBox(state, { frameIdx: 3, objId: 1, points: [[4, 4]], labels: [1] }),
      'IMAGE',
      /Cannot decode image bytes/,
    );
    expect(state.objIds).to.deep.equal([]);
    await expectSam2Error(
      video.addNewPointsOrBox(state, { frameIdx: 4, objId: 1, points: [[4, 4]], labels: [1] }),
      'INPUT',
      /Frame 4 is 26x16 but the video is 24x16: give frames of one size/,
    );
    await expectSam2Error(
      video.addNewPointsOrBox(state, { frameIdx: 0, objId: 1, points: [[4, 4]], labels: [7] }),
      'INPUT',
      /the label of point 0 must be 1 \(foreground\) or 0 \(background\), got 7/,
    );
    await expectSam2Error(
      video.addNewPointsOrBox(state, { frameIdx: 0, objId: 1, points: [[4, 4]], labels: [-1] }),
      'INPUT',
      /got -1/,
    );
    await expectSam2Error(
      video.addNewPointsOrBox(state, { frameIdx: 0, objId: 1.5, points: [[4, 4]], labels: [1] }),
      'INPUT',
      /objId must be an integer, got 1\.5/,
    );
    await video.addNewPointsOrBox(state, { frameIdx: 0, objId: 1, points: [[6, 8]], labels: [1] });
    await expectSam2Error(
      video.addNewPointsOrBox(state, { frameIdx: 3, objId: 2, points: [[4, 4]], labels: [1] }),
      'IMAGE',
      /Cannot decode/,
    );
    expect(state.objIds).to.deep.equal([1]);
    const count = tf.memory().numTensors;
    await expectSam2Error(
      video.propagateInVideo(state, { startFrameIdx: 9 }).next(),
      'INPUT',
      /frameIdx 9 is out of range/,
    );
    await expectSam2Error(
      video.propagateInVideo(state, { maxFrameNumToTrack: -1 }).next(),
      'INPUT',
      /maxFrameNumToTrack must be a non-negative integer, got -1/,
    );
    expect(tf.memory().numTensors).to.equal(count);
    const seen: number[] = [];
    for await (const f of video.propagateInVideo(state, { maxFrameNumToTrack: 2 })) seen.push(f.frameIdx);
    expect(seen).to.deep.equal([0, 1, 2]);
    video.resetState(state);
    expect(tf.memory().numTensors).to.equal(base);
  });

  it('concurrent calls on one state are queued; calls during a propagation loop are refused with STATE', async () => {
    const base = tf.memory().numTensors;
    const state = await video.initState(frames(3));
    const rs = await Promise.all([
      video.addNewPointsOrBox(state, { frameIdx: 0, objId: 1, points: [[6, 8]], labels: [1] }),
      video.addNewPointsOrBox(state, { frameIdx: 0, objId: 2, box: [10, 2, 20, 14] }),
      video.addNewPointsOrBox(state, { frameIdx: 0, objId: 1, points: [[8, 8]], labels: [0], clearOldPoints: false }),
    ]);
    expect(rs.map((r) => r.objIds)).to.deep.equal([[1], [1, 2], [1, 2]]);
    for await (const f of video.propagateInVideo(state)) {
      if (f.frameIdx !== 1) continue;
      await expectSam2Error(
        video.addNewPointsOrBox(state, { frameIdx: 1, objId: 1, points: [[6, 8]], labels: [1] }),
        'STATE',
        /propagateInVideo is running on this video state/,
      );
      await expectSam2Error(video.propagateInVideo(state).next(), 'STATE', /propagateInVideo is running/);
      await expectSam2Error(() => video.removeObject(state, 2), 'STATE', /propagateInVideo is running/);
    }
    // after the loop the state takes calls again
    await video.addNewPointsOrBox(state, { frameIdx: 2, objId: 1, points: [[8, 8]], labels: [1] });
    video.resetState(state);
    expect(tf.memory().numTensors).to.equal(base);
  });

  // 1000 frames at 64 px: ~80-100 ms a frame on a quiet 2-core VM, so ~1.5 min per case
  // (SAM2_LONG_FRAMES picks another length; at least 19, the memory window plus two frames)
  const LONG = Math.max(19, Number(process.env.SAM2_LONG_FRAMES || 1000));
  // once the memory window (16 frames + the conditioning frame) is full, nothing may grow
  const flat = (r: LongVideoResult, label: string) => {
    const w = 18;
    console.log(
      `      ${label}, ${LONG} frames: tensors ${r.counts[w]} -> ${r.counts[LONG - 1]}, bytes ${r.bytes[w]} -> ${r.bytes[LONG - 1]}, heap ${(r.heap[w] / 2 ** 20).toFixed(0)} -> ${(r.heap[LONG - 1] / 2 ** 20).toFixed(0)} MiB`,
    );
    expect(r.counts).to.have.length(LONG);
    expect(r.counts[LONG - 1]).to.equal(r.counts[w]);
    expect(r.bytes[LONG - 1]).to.equal(r.bytes[w]);
  };
  it(`memory stays flat over a ${LONG}-frame video at 64 px on the default backend (threaded wasm on 2+ cores)`, async () => {
    flat(await trackLongVideo(LONG), `${backendInfo()?.wasmThreads?.threads ?? 1} wasm thread(s)`);
  });
  it(`memory stays flat over a ${LONG}-frame video at 64 px on one wasm thread with the memory-attention worker thread`, async function () {
    if (os.cpus().length < 2) this.skip(); // the worker needs a second core
    const script = path.join(__dirname, '..', 'helpers', 'long_video.ts');
    const env = { ...process.env, SAM2_TFJS_QUIET: '1', SAM2_TFJS_BACKEND: '', [THREADS_ENV]: '1' };
    const out = execFileSync(process.execPath, ['--import', 'tsx', script, String(LONG)], { env, encoding: 'utf8' });
    const r = JSON.parse(out.trim().split('\n').pop() as string) as LongVideoResult;
    expect(r.threads).to.equal(1);
    expect(r.worker, 'memory attention may use its worker thread').to.equal(true);
    flat(r, 'one thread + worker');
  });
});
