/** Point grids and crop boxes of the automatic mask generator, as the reference builds them. */

/** Boxes are [x0, y0, x1, y1]. */
export type Box = [number, number, number, number];

/** An n x n grid of points in [0, 1]^2 at cell centres, x fastest. */
export function buildPointGrid(nPerSide: number): [number, number][] {
  const offset = 1 / (2 * nPerSide);
  const side = Array.from({ length: nPerSide }, (_, i) =>
    nPerSide === 1 ? offset : offset + ((1 - 2 * offset) * i) / (nPerSide - 1),
  );
  const pts: [number, number][] = [];
  for (const y of side) for (const x of side) pts.push([x, y]);
  return pts;
}

/** One grid per crop layer, with `scalePerLayer`^i fewer points per side on layer i. */
export function buildAllLayerPointGrids(
  nPerSide: number,
  nLayers: number,
  scalePerLayer: number,
): [number, number][][] {
  return Array.from({ length: nLayers + 1 }, (_, i) => buildPointGrid(Math.trunc(nPerSide / scalePerLayer ** i)));
}

/**
 * The whole image, then for each layer i a (2^(i+1))^2 grid of overlapping crops. Returns the
 * boxes with their layer index, in the reference's order (x0 outer, y0 inner).
 */
export function generateCropBoxes(
  height: number,
  width: number,
  nLayers: number,
  overlapRatio: number,
): { boxes: Box[]; layers: number[] } {
  const boxes: Box[] = [[0, 0, width, height]];
  const layers = [0];
  const shortSide = Math.min(height, width);
  const cropLen = (orig: number, n: number, overlap: number) => Math.ceil((overlap * (n - 1) + orig) / n);
  for (let layer = 0; layer < nLayers; layer++) {
    const n = 2 ** (layer + 1);
    const overlap = Math.trunc(overlapRatio * shortSide * (2 / n));
    const cw = cropLen(width, n, overlap);
    const ch = cropLen(height, n, overlap);
    const xs = Array.from({ length: n }, (_, i) => Math.trunc((cw - overlap) * i));
    const ys = Array.from({ length: n }, (_, i) => Math.trunc((ch - overlap) * i));
    for (const x0 of xs)
      for (const y0 of ys) {
        boxes.push([x0, y0, Math.min(x0 + cw, width), Math.min(y0 + ch, height)]);
        layers.push(layer + 1);
      }
  }
  return { boxes, layers };
}

/**
 * Whether a box (in crop coordinates) touches the crop's edge (within atol px) where that edge
 * is not also the image's edge: such masks are likely cut off by the crop.
 */
export function isBoxNearCropEdge(box: Box, crop: Box, image: Box, atol = 20): boolean {
  const b = [box[0] + crop[0], box[1] + crop[1], box[2] + crop[0], box[3] + crop[1]];
  return b.some((v, i) => Math.abs(v - crop[i]) <= atol && !(Math.abs(v - image[i]) <= atol));
}

export function boxXyxyToXywh(b: Box): Box {
  return [b[0], b[1], b[2] - b[0], b[3] - b[1]];
}

/**
 * Tight box [x0, y0, x1, y1] (inclusive pixel indices) around the non-zero pixels of a
 * row-major h x w mask; [0, 0, 0, 0] when empty.
 */
export function maskToBox(mask: ArrayLike<number>, h: number, w: number): Box {
  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      if (mask[row + x]) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        y1 = y;
      }
    }
  }
  return x1 < 0 ? [0, 0, 0, 0] : [x0, y0, x1, y1];
}
