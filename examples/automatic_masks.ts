/**
 * Segment everything, like the reference's automatic_mask_generator_example notebook.
 *   npx tsx examples/automatic_masks.ts <image> [weights-dir]
 */
import * as fs from 'fs';
import * as path from 'path';
import { AutomaticMaskGenerator, overlayPng, readImage, type MaskAnnotation } from '../src/index';
import { OUT_DIR, getModel, runExample } from './common';

async function main() {
  const imagePath = process.argv[2];
  if (!imagePath) {
    console.error('usage: npx tsx examples/automatic_masks.ts <image> [weights-dir]');
    process.exit(2);
  }
  const model = await getModel();
  const image = await readImage(imagePath);
  const smoke = process.env.SAM2_EXAMPLE_FORMULA === '1';
  const generator = new AutomaticMaskGenerator(
    model,
    smoke ? { pointsPerSide: 4, predIouThresh: 0, stabilityScoreThresh: 0 } : {},
  );
  const t = Date.now();
  const anns: MaskAnnotation[] = await generator.generate(image, {
    onProgress: (p) => process.stderr.write(`\r${p.stage} ${p.done}/${p.total} point batches`),
  });
  process.stderr.write('\n');
  console.log(`${anns.length} masks in ${((Date.now() - t) / 1000).toFixed(1)} s`, generator.lastTimings);
  const largestFirst = [...anns].sort((a, b) => b.area - a.area);
  fs.writeFileSync(
    path.join(OUT_DIR, 'auto_masks.png'),
    await overlayPng(
      image,
      largestFirst.map((a) => a.segmentation as Uint8Array),
      { alpha: 0.6 },
    ),
  );
  console.log(`wrote ${path.join(OUT_DIR, 'auto_masks.png')}`);
  generator.dispose();
  model.dispose();
}

runExample(main);
