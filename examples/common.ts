/**
 * Shared set-up of the examples: the model from ported weights, or (SAM2_EXAMPLE_FORMULA=1, in
 * a checkout with ../shared/fixtures) a formula-weights Hiera-T at 256 px for smoke tests.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Sam2Error, initBackend, loadSam2, makeConfig, Sam2Model } from '../src/index';
import { formulaWeights, loadManifest } from '../src/testing/manifest';

export const OUT_DIR = path.join(__dirname, 'out');

export async function getModel(weightsDir = process.argv[3] ?? 'weights/sam2.1_hiera_tiny'): Promise<Sam2Model> {
  fs.mkdirSync(OUT_DIR, { recursive: true });
  if (process.env.SAM2_EXAMPLE_FORMULA === '1') {
    await initBackend();
    const weights = formulaWeights(loadManifest('sam2.1_hiera_tiny'));
    const model = new Sam2Model(makeConfig('sam2.1', 'tiny', Number(process.env.SAM2_EXAMPLE_SIZE ?? 256)), weights);
    weights.dispose();
    console.log(`using formula weights at ${model.config.imageSize} px (smoke test: masks are not meaningful)`);
    return model;
  }
  if (!fs.existsSync(path.join(weightsDir, 'model.json'))) {
    console.error(
      `No ported weights in ${weightsDir}. Get them with:\n  npx sam2-tfjs download sam2.1_hiera_tiny\n` +
        `or download the .pt by hand and run: npx sam2-tfjs port sam2.1_hiera_tiny.pt --out ${weightsDir}`,
    );
    process.exit(1);
  }
  const model = await loadSam2(weightsDir);
  if (model.kind === 'sam1')
    throw new Sam2Error(
      'CONFIG',
      `${weightsDir} holds SAM 1 (${model.config.name}); these examples use SAM 2 weights.`,
    );
  return model;
}

/** Runs an example, printing a Sam2Error as one line (bad paths, missing frames) instead of a stack. */
export function runExample(main: () => Promise<void>): void {
  main().catch((e) => {
    console.error(e instanceof Sam2Error ? `error: ${e.message}` : e);
    process.exit(1);
  });
}
