/**
 * SAM 1's small-region clean-up of full-resolution masks (its automatic mask generator's
 * postprocess_small_regions): fill background holes smaller than the area, drop foreground
 * islands smaller than it (keeping the largest when every island is small), then NMS that
 * prefers masks the clean-up did not change.
 */
import { connectedComponents } from '../../ops/components';
import { maskToBox, type Box } from './geometry';
import { batchedNms } from './nms';

/**
 * remove_small_regions: mode 'holes' fills background components with area < areaThresh,
 * 'islands' removes foreground components with area < areaThresh (8-connected). Returns the
 * new mask (a copy when changed) and whether anything changed.
 */
export function removeSmallRegions(
  mask: Uint8Array,
  h: number,
  w: number,
  areaThresh: number,
  mode: 'holes' | 'islands',
): { mask: Uint8Array; changed: boolean } {
  const holes = mode === 'holes';
  const working = holes ? mask.map((v) => (v ? 0 : 1)) : mask;
  const { labels, areas, count } = connectedComponents(working, h, w);
  const small = new Set<number>();
  for (let l = 1; l <= count; l++) if (areas[l] < areaThresh) small.add(l);
  if (small.size === 0) return { mask, changed: false };
  const keep = new Uint8Array(count + 1); // labels whose pixels end up in the mask
  if (holes) {
    keep[0] = 1; // label 0 of the inverted mask is the original foreground
    for (const l of small) keep[l] = 1;
  } else {
    for (let l = 1; l <= count; l++) if (!small.has(l)) keep[l] = 1;
    if (keep.every((v) => v === 0)) {
      let best = 1;
      for (let l = 2; l <= count; l++) if (areas[l] > areas[best]) best = l;
      keep[best] = 1;
    }
  }
  return { mask: Uint8Array.from(labels, (l) => keep[l]), changed: true };
}

/** A mask candidate as the clean-up sees it (full-image mask and its box). */
export interface RegionCandidate {
  mask: Uint8Array;
  box: Box;
}

/**
 * Cleans every mask, recomputes boxes and keeps the NMS survivors (score 1 for unchanged
 * masks, 0 for changed ones). Returns the kept indices (NMS order) with, for changed kept
 * masks, their new mask and box.
 */
export function postprocessSmallRegions(
  candidates: RegionCandidate[],
  h: number,
  w: number,
  minArea: number,
  nmsThresh: number,
): { index: number; mask?: Uint8Array; box?: Box }[] {
  if (!candidates.length) return [];
  const cleaned = candidates.map((c) => {
    const a = removeSmallRegions(c.mask, h, w, minArea, 'holes');
    const b = removeSmallRegions(a.mask, h, w, minArea, 'islands');
    return { mask: b.mask, changed: a.changed || b.changed };
  });
  const boxes = cleaned.map((c) => maskToBox(c.mask, h, w));
  const keep = batchedNms(
    boxes,
    cleaned.map((c) => (c.changed ? 0 : 1)),
    boxes.map(() => 0),
    nmsThresh,
  );
  return keep.map((i) => (cleaned[i].changed ? { index: i, mask: cleaned[i].mask, box: boxes[i] } : { index: i }));
}
