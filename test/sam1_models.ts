/**
 * Memoized SAM 1 (ViT-B, formula weights) model and the one full-size truck encode the SAM 1
 * tests share (~1 min on wasm). Callers must not dispose what these return.
 */
import * as tf from '@tensorflow/tfjs';
import { disposeDeep } from './helpers';
import { caseTensor } from '../src/testing/fixtures';
import { formulaWeights, loadManifest } from '../src/testing/manifest';
import { makeSam1Config } from '../src/config_sam1';
import { Sam1Model } from '../src/model/sam1/sam1';

const memo = new Map<string, unknown>();
function once<T>(key: string, make: () => T): T {
  if (!memo.has(key)) memo.set(key, make());
  return memo.get(key) as T;
}

/**
 * Frees everything memoized here. The root hooks call this after each test file: the wasm heap
 * never shrinks, so models one file kept would crowd out the big tensors of later files.
 */
export function releaseSam1Models(): void {
  for (const value of [...memo.values()].reverse()) disposeDeep(value);
  memo.clear();
}

/** ViT-B with formula weights at 1024 px. */
export const vitBModel = (): Sam1Model =>
  once('vitBModel', () => {
    const weights = formulaWeights(loadManifest('sam_vit_b'));
    try {
      return new Sam1Model(makeSam1Config('vit_b'), weights);
    } finally {
      weights.dispose();
    }
  });

/** sam1_truck_vit_b's preprocessed input (the reference's own), NHWC [1, 1024, 1024, 3]. */
export const sam1TruckInput = (): tf.Tensor4D =>
  once('sam1TruckInput', () => {
    const { data } = caseTensor('sam1_truck_vit_b', 'input');
    return tf.keep(tf.transpose(tf.tensor4d(data, [1, 3, 1024, 1024]), [0, 2, 3, 1]) as tf.Tensor4D);
  });

export interface Sam1TruckEncoding {
  /** Outputs of blocks 0, 6 and 11, NHWC [1, 64, 64, 768]. */
  blocks: Map<number, tf.Tensor4D>;
  imageEmbed: tf.Tensor4D;
  seconds: number;
}

/** One encode of the reference's truck input, keeping the sampled blocks. */
export const sam1TruckEncoding = (): Sam1TruckEncoding =>
  once('sam1TruckEncoding', () => {
    const model = vitBModel();
    const blocks = new Map<number, tf.Tensor4D>();
    const t0 = Date.now();
    const imageEmbed = model.imageEncoder.forward(sam1TruckInput(), (i, out) => {
      if (i === 0 || i === 6 || i === 11) blocks.set(i, out.clone());
    });
    return { blocks, imageEmbed, seconds: (Date.now() - t0) / 1000 };
  });
