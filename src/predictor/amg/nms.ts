/** Non-maximum suppression with torchvision's batched_nms semantics. */
import type { Box } from './geometry';

function iou(a: Box, b: Box): number {
  const areaA = (a[2] - a[0]) * (a[3] - a[1]);
  const areaB = (b[2] - b[0]) * (b[3] - b[1]);
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  return inter / (areaA + areaB - inter);
}

/**
 * Greedy NMS per group: boxes are visited by decreasing score (stable for ties) and a box is
 * dropped when its IoU with a kept box of the same group exceeds `iouThreshold`. Returns the
 * kept indices sorted by decreasing score, as torchvision.ops.batched_nms.
 */
export function batchedNms(
  boxes: Box[],
  scores: ArrayLike<number>,
  groups: ArrayLike<number>,
  iouThreshold: number,
): number[] {
  const order = Array.from(boxes.keys()).sort((i, j) => scores[j] - scores[i] || i - j);
  const kept: number[] = [];
  for (const i of order) {
    let ok = true;
    for (const k of kept) {
      if (groups[k] === groups[i] && iou(boxes[i], boxes[k]) > iouThreshold) {
        ok = false;
        break;
      }
    }
    if (ok) kept.push(i);
  }
  return kept;
}
