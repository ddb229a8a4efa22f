/**
 * One image's automatic masks in the SA-1B layout (the layout of Meta's released dataset):
 * the image record, then one annotation per mask with a COCO RLE segmentation.
 */
import type { SamModel } from '../model/sam_model';
import {
  AutomaticMaskGenerator,
  type AutomaticMaskGeneratorOptions,
  type MaskAnnotation,
} from '../predictor/automatic_mask_generator';
import type { CocoRle } from '../predictor/amg/rle';
import type { Box } from '../predictor/amg/geometry';
import { readImage, type ImageInput } from '../predictor/image_input';

/** AutomaticMaskGenerator options a batch run takes (the output is always COCO RLE). */
export type BatchAmgOptions = Omit<AutomaticMaskGeneratorOptions, 'outputMode'>;

export interface Sa1bAnnotation {
  /** 1-based index of the mask within its image. */
  id: number;
  segmentation: CocoRle;
  area: number;
  /** [x, y, w, h]. */
  bbox: Box;
  predicted_iou: number;
  stability_score: number;
  point_coords: [number, number][];
  /** [x, y, w, h] of the crop that produced the mask. */
  crop_box: Box;
}

export interface Sa1bRecord {
  image: { file_name: string; width: number; height: number };
  annotations: Sa1bAnnotation[];
}

export function toSa1b(fileName: string, width: number, height: number, anns: MaskAnnotation[]): Sa1bRecord {
  return {
    image: { file_name: fileName, width, height },
    annotations: anns.map((a, i) => ({
      id: i + 1,
      segmentation: a.segmentation as CocoRle,
      area: a.area,
      bbox: a.bbox,
      predicted_iou: a.predictedIou,
      stability_score: a.stabilityScore,
      point_coords: a.pointCoords,
      crop_box: a.cropBox,
    })),
  };
}

/** A generator for batch runs: the caller's options, COCO RLE output. */
export function batchGenerator(model: SamModel, options: BatchAmgOptions = {}): AutomaticMaskGenerator {
  return new AutomaticMaskGenerator(model, { ...options, outputMode: 'coco_rle' });
}

/**
 * Throws the generator's CONFIG/INPUT error for bad options without a model, so a run fails
 * before loading weights or enqueuing jobs. The constructor only reads `config.imageSize`.
 */
export function checkAmgOptions(options: BatchAmgOptions): void {
  batchGenerator({ config: { imageSize: 1024 } } as unknown as SamModel, options);
}

/** Decodes `image` and segments everything in it: the same code for local runs and queue workers. */
export async function annotateImage(
  gen: AutomaticMaskGenerator,
  image: ImageInput,
  fileName: string,
  onProgress?: (done: number, total: number) => void,
): Promise<Sa1bRecord> {
  const rgb = await readImage(image);
  const anns = await gen.generate(rgb, { onProgress: onProgress && ((p) => onProgress(p.done, p.total)) });
  return toSa1b(fileName, rgb.width, rgb.height, anns);
}
