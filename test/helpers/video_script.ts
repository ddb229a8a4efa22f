/**
 * The video_bedroom fixture's script (clicks, a box, propagation, corrections, reverse
 * propagation) run through a VideoPredictor, every output compared with the reference's masks
 * and sampled logits.
 */
import { expect } from 'chai';
import { caseMasks, caseTensor, expectClose, fixturePath, loadCase, maskIoU } from '../helpers';
import type { VideoFrameResult, VideoPredictor } from '../../src/predictor/video_predictor';

interface Step {
  id: string;
  op: 'add' | 'propagate';
  frame?: number;
  obj?: number;
  points?: number[][];
  labels?: number[];
  box?: number[];
  start?: number;
  reverse?: boolean;
}

const c = loadCase('video_bedroom');
const [H, W] = c.video_hw as [number, number];

/** Logits at the fixture's 32x32 grid of pixel centres. */
function sample(logits: Float32Array): Float32Array {
  const out = new Float32Array(32 * 32);
  for (let i = 0; i < 32; i++)
    for (let j = 0; j < 32; j++)
      out[i * 32 + j] = logits[Math.floor(((i + 0.5) * H) / 32) * W + Math.floor(((j + 0.5) * W) / 32)];
  return out;
}

function compare(name: string, r: VideoFrameResult, objIds: number[]) {
  expect(r.objIds).to.deep.equal(objIds);
  const { masks } = caseMasks('video_bedroom', `${name}_masks`);
  const ious = r.masks.map((m, i) => maskIoU(m, masks[i]));
  const ref = caseTensor('video_bedroom', `${name}_logits_sampled`);
  const ours = new Float32Array(r.logits!.length * 1024);
  r.logits!.forEach((l, i) => ours.set(sample(l), i * 1024));
  console.log(`      ${name}: mask IoUs ${ious.map((v) => v.toFixed(4)).join(', ')}`);
  expectClose(`${name} logits (sampled)`, ours, ref.data, 1e-2, ref.stats.std);
  ious.forEach((v, i) => expect(v, `${name} object ${objIds[i]} IoU`).to.be.at.least(0.995));
}

/**
 * Runs the first `steps` steps of the script (all by default) on a new state; with
 * `maxFrames`, propagations stop after that many frames past their start.
 */
export async function runVideoScript(video: VideoPredictor, opts: { steps?: number; maxFrames?: number } = {}) {
  const framePaths = (c.frames as string[]).map((f) => fixturePath('videos/bedroom', f.replace('.jpg', '.png')));
  const state = await video.initState(framePaths);
  try {
    for (const step of (c.script as Step[]).slice(0, opts.steps)) {
      if (step.op === 'add') {
        const r = await video.addNewPointsOrBox(state, {
          frameIdx: step.frame!,
          objId: step.obj!,
          points: step.points,
          labels: step.labels,
          box: step.box,
          returnLogits: true,
        });
        compare(step.id, r, c[`${step.id}_obj_ids`] as number[]);
      } else {
        let frames = c[`${step.id}_frames`] as number[];
        if (opts.maxFrames !== undefined) frames = frames.slice(0, opts.maxFrames + 1);
        const seen: number[] = [];
        for await (const r of video.propagateInVideo(state, {
          startFrameIdx: step.start,
          reverse: step.reverse,
          maxFrameNumToTrack: opts.maxFrames,
          returnLogits: true,
        })) {
          seen.push(r.frameIdx);
          compare(`${step.id}_f${r.frameIdx}`, r, c[`${step.id}_obj_ids`] as number[]);
        }
        expect(seen).to.deep.equal(frames);
      }
    }
  } finally {
    video.resetState(state);
  }
}
