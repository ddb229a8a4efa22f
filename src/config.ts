/**
 * Model configurations as data: one SAM 2 / 2.1 config per size, mirroring the reference's
 * YAML files, and detection of the variant from a checkpoint's keys and shapes.
 */
import { Sam2Error } from './errors';

export type Generation = 'sam2' | 'sam2.1';
export type SizeName = 'tiny' | 'small' | 'base_plus' | 'large';

export interface HieraConfig {
  embedDim: number;
  numHeads: number;
  /** Blocks per stage. */
  stages: number[];
  /** Indices (over all blocks) of the blocks with global attention. */
  globalAttBlocks: number[];
  /** Window size per stage. */
  windowSpec: number[];
  /** Spatial size of the background position embedding (H, W). */
  windowPosEmbedBkgSpatialSize: [number, number];
  /** Number of stage transitions with query pooling. */
  qPool: number;
  qStride: [number, number];
  dimMul: number;
  headMul: number;
  mlpRatio: number;
}

export interface NeckConfig {
  dModel: number;
  /** Trunk channels, lowest resolution first (as the reference lists them). */
  backboneChannelList: number[];
  fpnTopDownLevels: number[];
  /** Number of lowest-resolution levels dropped after the neck. */
  scalp: number;
}

export interface Sam2Config {
  /** e.g. `sam2.1_hiera_tiny`. */
  name: string;
  generation: Generation;
  size: SizeName;
  /** Square input resolution; a multiple of 16 (1024 for the official checkpoints). */
  imageSize: number;
  backboneStride: number;
  trunk: HieraConfig;
  neck: NeckConfig;
  /** Memory frames attended to (1 conditioning + 6 recent). */
  numMaskmem: number;
  maxObjPtrsInEncoder: number;
  memoryAttentionLayers: number;
  memoryDim: number;
  sigmoidScaleForMemEnc: number;
  sigmoidBiasForMemEnc: number;
  /** SAM 2.1 only: temporal encoding of object pointers, signed and projected. */
  addTposEncToObjPtrs: boolean;
  projTposEncInObjPtrs: boolean;
  useSignedTposEncToObjPtrs: boolean;
  /** SAM 2.1 only: learned embedding added to memories of frames without the object. */
  noObjEmbedSpatial: boolean;
  /** Post-processing the reference's build_sam2 enables. */
  dynamicMultimaskViaStability: boolean;
  dynamicMultimaskStabilityDelta: number;
  dynamicMultimaskStabilityThresh: number;
  /** Video only: binarize the mask logits of frames with clicks before encoding memory. */
  binarizeMaskFromPtsForMemEnc: boolean;
  /** Video only: fill holes of up to this area (pixels at 256x256) in tracked masks. */
  fillHoleArea: number;
}

const TRUNKS: Record<SizeName, HieraConfig> = {
  tiny: hiera(96, 1, [1, 2, 7, 2], [5, 7, 9], [8, 4, 14, 7], [7, 7]),
  small: hiera(96, 1, [1, 2, 11, 2], [7, 10, 13], [8, 4, 14, 7], [7, 7]),
  base_plus: hiera(112, 2, [2, 3, 16, 3], [12, 16, 20], [8, 4, 14, 7], [14, 14]),
  large: hiera(144, 2, [2, 6, 36, 4], [23, 33, 43], [8, 4, 16, 8], [7, 7]),
};

function hiera(
  embedDim: number,
  numHeads: number,
  stages: number[],
  globalAttBlocks: number[],
  windowSpec: number[],
  bkg: [number, number],
): HieraConfig {
  return {
    embedDim,
    numHeads,
    stages,
    globalAttBlocks,
    windowSpec,
    windowPosEmbedBkgSpatialSize: bkg,
    qPool: 3,
    qStride: [2, 2],
    dimMul: 2,
    headMul: 2,
    mlpRatio: 4,
  };
}

export const SIZE_NAMES: readonly SizeName[] = ['tiny', 'small', 'base_plus', 'large'];

/** The official model names, e.g. `sam2.1_hiera_tiny`, `sam2_hiera_base_plus`. */
export const MODEL_NAMES: readonly string[] = (['sam2', 'sam2.1'] as Generation[]).flatMap((g) =>
  SIZE_NAMES.map((s) => `${g}_hiera_${s}`),
);

/** The reference config for a generation and size (optionally at another input size). */
export function makeConfig(generation: Generation, size: SizeName, imageSize = 1024): Sam2Config {
  const trunk = TRUNKS[size];
  const c = trunk.embedDim;
  const v21 = generation === 'sam2.1';
  const config: Sam2Config = {
    name: `${generation}_hiera_${size}`,
    generation,
    size,
    imageSize,
    backboneStride: 16,
    trunk: { ...trunk },
    neck: { dModel: 256, backboneChannelList: [8 * c, 4 * c, 2 * c, c], fpnTopDownLevels: [2, 3], scalp: 1 },
    numMaskmem: 7,
    maxObjPtrsInEncoder: 16,
    memoryAttentionLayers: 4,
    memoryDim: 64,
    sigmoidScaleForMemEnc: 20,
    sigmoidBiasForMemEnc: -10,
    addTposEncToObjPtrs: v21,
    projTposEncInObjPtrs: v21,
    useSignedTposEncToObjPtrs: v21,
    noObjEmbedSpatial: v21,
    dynamicMultimaskViaStability: true,
    dynamicMultimaskStabilityDelta: 0.05,
    dynamicMultimaskStabilityThresh: 0.98,
    binarizeMaskFromPtsForMemEnc: true,
    fillHoleArea: 8,
  };
  validateConfig(config);
  return config;
}

/** Parses an official model name (`sam2.1_hiera_tiny`; `b+`, `t`, `s`, `l` accepted too). */
export function configFromName(name: string, imageSize = 1024): Sam2Config {
  const m = /^(sam2(?:\.1)?)_hiera_(tiny|small|base_plus|large|t|s|b\+|l)$/.exec(name);
  if (!m) {
    throw new Sam2Error('CONFIG', `Unknown model "${name}". Known models: ${MODEL_NAMES.join(', ')}.`);
  }
  const alias: Record<string, SizeName> = { t: 'tiny', s: 'small', 'b+': 'base_plus', l: 'large' };
  const size = (alias[m[2]] ?? m[2]) as SizeName;
  return makeConfig(m[1] as Generation, size, imageSize);
}

/** Checks the values a user may change (the input size) and the config's internal consistency. */
export function validateConfig(config: Sam2Config): void {
  const s = config.imageSize;
  if (!Number.isInteger(s) || s < 64 || s % 32 !== 0) {
    // the trunk downsamples 32x; the position embeddings tile windows of the stride-4 grid
    throw new Sam2Error('CONFIG', `imageSize must be a multiple of 32 and at least 64, got ${s}.`);
  }
  const blocks = config.trunk.stages.reduce((a, b) => a + b, 0);
  if (config.trunk.globalAttBlocks.some((b) => b < 0 || b >= blocks)) {
    throw new Sam2Error('CONFIG', `globalAttBlocks ${config.trunk.globalAttBlocks} outside 0..${blocks - 1}.`);
  }
}

/**
 * Recognises the variant of a checkpoint from its keys and shapes: the trunk width and block
 * count give the size; SAM 2.1 has `obj_ptr_tpos_proj.*` and `no_obj_embed_spatial`.
 */
export function detectConfig(shapes: ReadonlyMap<string, readonly number[]>, imageSize = 1024): Sam2Config {
  const patch = shapes.get('image_encoder.trunk.patch_embed.proj.weight');
  if (!patch) {
    throw new Sam2Error(
      'WEIGHTS',
      'Not a SAM 2 checkpoint: no "image_encoder.trunk.patch_embed.proj.weight" (is this a SAM 1 or a training checkpoint?).',
    );
  }
  const embedDim = patch[0];
  let blocks = 0;
  while (shapes.has(`image_encoder.trunk.blocks.${blocks}.norm1.weight`)) blocks++;
  const size = SIZE_NAMES.find((s) => {
    const t = TRUNKS[s];
    return t.embedDim === embedDim && t.stages.reduce((a, b) => a + b, 0) === blocks;
  });
  if (!size) {
    throw new Sam2Error(
      'WEIGHTS',
      `Unrecognised Hiera trunk: embed dim ${embedDim} with ${blocks} blocks (known: tiny 96/12, small 96/16, base+ 112/24, large 144/48).`,
    );
  }
  const has21 = shapes.has('obj_ptr_tpos_proj.weight') || shapes.has('no_obj_embed_spatial');
  return makeConfig(has21 ? 'sam2.1' : 'sam2', size, imageSize);
}
