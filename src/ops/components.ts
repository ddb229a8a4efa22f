/**
 * 8-connected component labelling on the CPU, shared by hole filling (video and SamPredictor
 * post-processing) and small-region removal (automatic mask generator).
 */

export interface Components {
  /** Per pixel: 0 for pixels outside the mask, else the component label 1..count. */
  labels: Int32Array;
  /** areas[label] = pixel count of that component; areas[0] is 0. */
  areas: Int32Array;
  count: number;
}

/**
 * Labels the connected components of the non-zero pixels of a row-major `h` x `w` mask,
 * 8-connectivity, labels in raster order of each component's first pixel (as OpenCV does).
 */
export function connectedComponents(mask: ArrayLike<number>, h: number, w: number): Components {
  const n = h * w;
  if (mask.length !== n) throw new Error(`connectedComponents: mask has ${mask.length} pixels, expected ${h}x${w}`);
  const labels = new Int32Array(n);
  const stack = new Int32Array(n);
  const areas: number[] = [0];
  let count = 0;
  for (let start = 0; start < n; start++) {
    if (mask[start] === 0 || labels[start] !== 0) continue;
    const label = ++count;
    let area = 0;
    let top = 0;
    stack[top++] = start;
    labels[start] = label;
    while (top > 0) {
      const p = stack[--top];
      area++;
      const y = (p / w) | 0;
      const x = p - y * w;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if ((dx === 0 && dy === 0) || xx < 0 || xx >= w) continue;
          const q = yy * w + xx;
          if (mask[q] !== 0 && labels[q] === 0) {
            labels[q] = label;
            stack[top++] = q;
          }
        }
      }
    }
    areas.push(area);
  }
  return { labels, areas: Int32Array.from(areas), count };
}

/**
 * Per pixel, the area of the component it belongs to (0 outside the mask): the `counts`
 * output of the reference's get_connected_components.
 */
export function componentAreas(mask: ArrayLike<number>, h: number, w: number): Int32Array {
  const { labels, areas } = connectedComponents(mask, h, w);
  const out = new Int32Array(labels.length);
  for (let i = 0; i < labels.length; i++) out[i] = areas[labels[i]];
  return out;
}
