/**
 * Memoized models and features shared by test files: an encode takes tens of seconds on wasm,
 * so the truck fixture is encoded once per test run. Callers must not dispose what these return.
 */
import * as tf from '@tensorflow/tfjs';
import { disposeDeep } from './helpers';
import { caseTensor } from '../src/testing/fixtures';
import { formulaWeights, loadManifest } from '../src/testing/manifest';
import { ImageEncoder, type ImageFeatures } from '../src/model/image_encoder';
import { makeConfig, type Sam2Config } from '../src/config';
import type { Weights } from '../src/weights';
import { Sam2Model } from '../src/model/sam2';

const memo = new Map<string, unknown>();
function once<T>(key: string, make: () => T): T {
  if (!memo.has(key)) memo.set(key, make());
  return memo.get(key) as T;
}

/**
 * Frees everything memoized here. The root hooks call this after each test file: the wasm heap
 * never shrinks, so models one file kept would crowd out the big tensors of later files.
 */
export function releaseModels(): void {
  for (const value of [...memo.values()].reverse()) disposeDeep(value);
  memo.clear();
}

export const tinyConfig = (): Sam2Config => makeConfig('sam2.1', 'tiny');

/** Formula weights of SAM 2.1 Hiera-T in TF.js layout. */
export const tinyWeights = (): Weights => once('tinyWeights', () => formulaWeights(loadManifest('sam2.1_hiera_tiny')));

export const tinyImageEncoder = (): ImageEncoder =>
  once('tinyImageEncoder', () => {
    const enc = new ImageEncoder(tinyConfig());
    enc.loadFrom(tinyWeights());
    return enc;
  });

/** image_truck's preprocessed input (the reference's own), NHWC [1, 1024, 1024, 3]. */
export const truckInput = (): tf.Tensor4D =>
  once('truckInput', () => {
    const { data } = caseTensor('image_truck', 'input');
    return tf.keep(tf.transpose(tf.tensor4d(data, [1, 3, 1024, 1024]), [0, 2, 3, 1]) as tf.Tensor4D);
  });

/** Every intermediate of one encode of truckInput: trunk stages, neck levels, image features. */
export interface TruckEncoding {
  stages: tf.Tensor4D[];
  neckFeatures: tf.Tensor4D[];
  neckPos: tf.Tensor4D[];
  features: ImageFeatures;
  seconds: number;
}

export const truckEncoding = (): TruckEncoding =>
  once('truckEncoding', () => {
    const enc = tinyImageEncoder();
    const t0 = Date.now();
    const stages = enc.forwardTrunk(truckInput());
    const neck = enc.forwardNeck(stages);
    const seconds = (Date.now() - t0) / 1000;
    const features = tf.tidy(() => {
      const s0 = enc.convS0.forward(neck.features[0]);
      const s1 = enc.convS1.forward(neck.features[1]);
      const imageEmbed = tf.add(neck.features[2], tf.reshape(enc.noMemEmbed, [1, 1, 1, -1])) as tf.Tensor4D;
      return { imageEmbed, highResFeats: [s0, s1] as [tf.Tensor4D, tf.Tensor4D] };
    });
    tf.keep(features.imageEmbed);
    features.highResFeats.forEach((t) => tf.keep(t));
    return { stages, neckFeatures: neck.features, neckPos: neck.pos, features, seconds };
  });

/** The fixture's cached image features of the truck (the reference's own), NHWC. */
export const truckFixtureFeatures = (): ImageFeatures =>
  once('truckFixtureFeatures', () => {
    const load = (name: string, c: number, s: number) =>
      tf.keep(
        tf.transpose(tf.tensor4d(caseTensor('image_truck', name).data, [1, c, s, s]), [0, 2, 3, 1]) as tf.Tensor4D,
      );
    return {
      imageEmbed: load('image_embed', 256, 64),
      highResFeats: [load('high_res_feats0', 32, 256), load('high_res_feats1', 64, 128)],
    };
  });

/** A Sam2Model with SAM 2.1 Hiera-T formula weights. */
export const tinyImageModel = (): Sam2Model => once('tinyImageModel', () => new Sam2Model(tinyConfig(), tinyWeights()));
