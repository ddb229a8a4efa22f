/** Point grids of the automatic mask generator: where the grid of single-click prompts goes. */

/** A point [x, y]; in a grid, normalized to [0, 1]^2. */
export type Point = [number, number];

/**
 * An n x n grid of cell centres in [0, 1]^2, x varying fastest. The arithmetic follows
 * numpy's linspace (start + i * step, last point set to the end) so points agree bit for bit
 * with the reference's grid.
 */
export function buildPointGrid(nPerSide: number): Point[] {
  const offset = 1 / (2 * nPerSide);
  const stop = 1 - offset;
  const step = (stop - offset) / (nPerSide - 1);
  const side = Array.from({ length: nPerSide }, (_, i) => (nPerSide === 1 ? offset : i === nPerSide - 1 ? stop : i * step + offset));
  const points: Point[] = [];
  for (const y of side) for (const x of side) points.push([x, y]);
  return points;
}

/**
 * One grid per crop layer: layer i has trunc(nPerSide / scalePerLayer^i) points per side
 * (smaller crops need fewer points to cover the same objects).
 */
export function buildAllLayerPointGrids(nPerSide: number, nLayers: number, scalePerLayer: number): Point[][] {
  return Array.from({ length: nLayers + 1 }, (_, i) => buildPointGrid(Math.trunc(nPerSide / scalePerLayer ** i)));
}
