/**
 * Non-maximum suppression with the semantics of torchvision.ops.batched_nms on the CPU:
 * float32 arithmetic, ties in score kept in index order, a box suppressed when its IoU with a
 * kept box of the same group is strictly above the threshold, result by decreasing score.
 */
import type { Box } from './crops';

const f = Math.fround;

/** Plain NMS over the given indices (all in one group); returns kept indices by decreasing score. */
function nms(boxes: Box[], scores: ArrayLike<number>, indices: number[], iouThreshold: number): number[] {
  const order = [...indices].sort((i, j) => scores[j] - scores[i] || i - j);
  const area = (b: Box) => f(f(b[2] - b[0]) * f(b[3] - b[1]));
  const suppressed = new Uint8Array(boxes.length);
  const keep: number[] = [];
  for (let a = 0; a < order.length; a++) {
    const i = order[a];
    if (suppressed[i]) continue;
    keep.push(i);
    const bi = boxes[i];
    const areaI = area(bi);
    for (let c = a + 1; c < order.length; c++) {
      const j = order[c];
      if (suppressed[j]) continue;
      const bj = boxes[j];
      const w = Math.max(0, f(Math.min(bi[2], bj[2]) - Math.max(bi[0], bj[0])));
      const h = Math.max(0, f(Math.min(bi[3], bj[3]) - Math.max(bi[1], bj[1])));
      const inter = f(w * h);
      // NaN (two empty boxes) never suppresses
      if (f(inter / f(f(areaI + area(bj)) - inter)) > iouThreshold) suppressed[j] = 1;
    }
  }
  return keep;
}

/**
 * Greedy NMS within each group (`groups[i]` is box i's category). Returns the kept indices by
 * decreasing score (ties by index). Like torchvision, up to 1000 boxes are shifted apart per
 * group in float32 and suppressed in one pass; more are suppressed group by group.
 */
export function batchedNms(boxes: Box[], scores: ArrayLike<number>, groups: ArrayLike<number>, iouThreshold: number): number[] {
  const n = boxes.length;
  if (n === 0) return [];
  const all = Array.from(boxes.keys());
  if (n * 4 <= 4000) {
    // torchvision's "coordinate trick": offsets make boxes of different groups disjoint
    let maxCoord = -Infinity;
    for (const b of boxes) for (const v of b) maxCoord = Math.max(maxCoord, f(v));
    const shifted = boxes.map((b, i) => {
      const o = f(f(groups[i]) * f(maxCoord + 1));
      return b.map((v) => f(f(v) + o)) as Box;
    });
    return nms(shifted, scores, all, iouThreshold);
  }
  const byGroup = new Map<number, number[]>();
  for (const i of all) {
    const g = byGroup.get(groups[i]);
    if (g) g.push(i);
    else byGroup.set(groups[i], [i]);
  }
  const kept: number[] = [];
  for (const idx of byGroup.values()) kept.push(...nms(boxes, scores, idx, iouThreshold));
  return kept.sort((i, j) => scores[j] - scores[i] || i - j);
}
