/**
 * SAM 1 (facebookresearch/segment-anything) configurations as data: the three ViT sizes of the
 * official checkpoints, and detection of the size from a checkpoint's keys and shapes.
 */
import { Sam2Error } from './errors';

export type Sam1SizeName = 'vit_b' | 'vit_l' | 'vit_h';

export interface VitConfig {
  /** Token width. */
  embedDim: number;
  depth: number;
  numHeads: number;
  /** Blocks with global attention; the others attend within windows. */
  globalAttnIndexes: number[];
  /** Side of the attention windows (in patches). */
  windowSize: number;
  patchSize: number;
  mlpRatio: number;
  /** Output channels of the neck. */
  outChans: number;
  /** Input size the position embeddings were trained at (their grid is this / patchSize). */
  pretrainImgSize: number;
}

export interface Sam1Config {
  /** Tells a SAM 1 config from a SAM 2 one (which has no `kind`). */
  kind: 'sam1';
  /** `sam_vit_b`, `sam_vit_l` or `sam_vit_h`. */
  name: string;
  size: Sam1SizeName;
  /** Square model input; images are resized so their longest side is this, then padded. */
  imageSize: number;
  backboneStride: number;
  vit: VitConfig;
}

const VITS: Record<Sam1SizeName, Pick<VitConfig, 'embedDim' | 'depth' | 'numHeads' | 'globalAttnIndexes'>> = {
  vit_b: { embedDim: 768, depth: 12, numHeads: 12, globalAttnIndexes: [2, 5, 8, 11] },
  vit_l: { embedDim: 1024, depth: 24, numHeads: 16, globalAttnIndexes: [5, 11, 17, 23] },
  vit_h: { embedDim: 1280, depth: 32, numHeads: 16, globalAttnIndexes: [7, 15, 23, 31] },
};

export const SAM1_SIZE_NAMES: readonly Sam1SizeName[] = ['vit_b', 'vit_l', 'vit_h'];

/** The official SAM 1 model names: `sam_vit_b`, `sam_vit_l`, `sam_vit_h`. */
export const SAM1_MODEL_NAMES: readonly string[] = SAM1_SIZE_NAMES.map((s) => `sam_${s}`);

/** The official checkpoint file of each SAM 1 model (under segment_anything/ of the download site). */
export const SAM1_CHECKPOINT_FILES: Readonly<Record<string, string>> = {
  sam_vit_b: 'sam_vit_b_01ec64.pth',
  sam_vit_l: 'sam_vit_l_0b3195.pth',
  sam_vit_h: 'sam_vit_h_4b8939.pth',
};

/** True for a SAM 1 config (SAM 2 configs have no `kind`). */
export function isSam1Config(config: object): config is Sam1Config {
  return (config as { kind?: string }).kind === 'sam1';
}

/** The reference config of a SAM 1 size (optionally at another input size). */
export function makeSam1Config(size: Sam1SizeName, imageSize = 1024): Sam1Config {
  const config: Sam1Config = {
    kind: 'sam1',
    name: `sam_${size}`,
    size,
    imageSize,
    backboneStride: 16,
    vit: {
      ...VITS[size],
      globalAttnIndexes: [...VITS[size].globalAttnIndexes],
      windowSize: 14,
      patchSize: 16,
      mlpRatio: 4,
      outChans: 256,
      pretrainImgSize: 1024,
    },
  };
  validateSam1Config(config);
  return config;
}

/** Parses `sam_vit_b|l|h` (or `vit_b|l|h`). */
export function sam1ConfigFromName(name: string, imageSize = 1024): Sam1Config {
  const m = /^(?:sam_)?(vit_[blh])$/.exec(name);
  if (!m) throw new Sam2Error('CONFIG', `Unknown SAM 1 model "${name}". Known: ${SAM1_MODEL_NAMES.join(', ')}.`);
  return makeSam1Config(m[1] as Sam1SizeName, imageSize);
}

/** Checks the input size (the only value a user changes) and the block indexes. */
export function validateSam1Config(config: Sam1Config): void {
  const s = config.imageSize;
  if (!Number.isInteger(s) || s < 64 || s % 16 !== 0) {
    // 16x16 patches; the decoder upscales the 1/16 grid 4x, so any multiple of 16 works
    throw new Sam2Error('CONFIG', `imageSize must be a multiple of 16 and at least 64, got ${s}.`);
  }
  const { depth, globalAttnIndexes } = config.vit;
  if (globalAttnIndexes.some((b) => b < 0 || b >= depth)) {
    throw new Sam2Error('CONFIG', `globalAttnIndexes ${globalAttnIndexes} outside 0..${depth - 1}.`);
  }
}

/** True when a checkpoint's keys look like SAM 1 (a ViT image encoder, unprefixed heads). */
export function looksLikeSam1(shapes: ReadonlyMap<string, readonly number[]>): boolean {
  return shapes.has('image_encoder.patch_embed.proj.weight') && shapes.has('mask_decoder.iou_token.weight');
}

/** Recognises ViT-B/L/H from the patch embedding width and the block count. */
export function detectSam1Config(shapes: ReadonlyMap<string, readonly number[]>, imageSize = 1024): Sam1Config {
  const patch = shapes.get('image_encoder.patch_embed.proj.weight');
  if (!patch) {
    throw new Sam2Error('WEIGHTS', 'Not a SAM 1 checkpoint: no "image_encoder.patch_embed.proj.weight".');
  }
  let depth = 0;
  while (shapes.has(`image_encoder.blocks.${depth}.norm1.weight`)) depth++;
  const size = SAM1_SIZE_NAMES.find((s) => VITS[s].embedDim === patch[0] && VITS[s].depth === depth);
  if (!size) {
    throw new Sam2Error(
      'WEIGHTS',
      `Unrecognised SAM 1 ViT: embed dim ${patch[0]} with ${depth} blocks (known: vit_b 768/12, vit_l 1024/24, vit_h 1280/32).`,
    );
  }
  return makeSam1Config(size, imageSize);
}
