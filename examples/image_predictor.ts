/**
 * Image prompts, like the reference's image_predictor_example notebook: a click, several clicks,
 * a box, a box with a negative click, and several boxes at once. Writes PNG overlays.
 *   npx tsx examples/image_predictor.ts <image> [weights-dir]
 */
import * as fs from 'fs';
import * as path from 'path';
import { SamPredictor, overlayPng, readImage } from '../src/index';
import { OUT_DIR, getModel, runExample } from './common';

async function main() {
  const imagePath = process.argv[2];
  if (!imagePath) {
    console.error('usage: npx tsx examples/image_predictor.ts <image> [weights-dir]');
    process.exit(2);
  }
  const model = await getModel();
  const image = await readImage(imagePath);
  const predictor = new SamPredictor(model);
  let t = Date.now();
  await predictor.setImage(image);
  console.log(`image embedding: ${Date.now() - t} ms`);
  const { width: w, height: h } = image;
  const click: [number, number] = [w * 0.28, h * 0.31];

  t = Date.now();
  const one = await predictor.predict({ pointCoords: [click], pointLabels: [1] });
  console.log(`one click: ${Date.now() - t} ms, scores ${Array.from(one.scores).map((s) => s.toFixed(3))}`);
  for (let i = 0; i < one.masks.length; i++) {
    fs.writeFileSync(
      path.join(OUT_DIR, `click_mask${i}.png`),
      await overlayPng(image, [one.masks[i]], { points: [{ xy: click, label: 1 }] }),
    );
  }
  const best = one.scores.indexOf(Math.max(...one.scores));
  const two = await predictor.predict({
    pointCoords: [click, [w * 0.62, h * 0.52]],
    pointLabels: [1, 1],
    maskInput: one.lowResLogits[best],
    multimaskOutput: false,
  });
  fs.writeFileSync(path.join(OUT_DIR, 'two_clicks.png'), await overlayPng(image, two.masks));
  const box: [number, number, number, number] = [w * 0.24, h * 0.5, w * 0.39, h * 0.73];
  const boxed = await predictor.predict({
    box,
    pointCoords: [[w * 0.32, h * 0.62]],
    pointLabels: [0],
    multimaskOutput: false,
  });
  fs.writeFileSync(
    path.join(OUT_DIR, 'box_negative_click.png'),
    await overlayPng(image, boxed.masks, { boxes: [box], points: [{ xy: [w * 0.32, h * 0.62], label: 0 }] }),
  );
  const boxes: [number, number, number, number][] = [box, [w * 0.76, h * 0.46, w * 0.92, h * 0.67]];
  const many = await predictor.predictBatch(
    boxes.map((b) => ({ box: b })),
    { multimaskOutput: false },
  );
  fs.writeFileSync(
    path.join(OUT_DIR, 'boxes.png'),
    await overlayPng(
      image,
      many.map((r) => r.masks[0]),
      { boxes },
    ),
  );
  console.log(`wrote ${fs.readdirSync(OUT_DIR).length} PNGs to ${OUT_DIR}`);
  predictor.dispose();
  model.dispose();
}

runExample(main);
