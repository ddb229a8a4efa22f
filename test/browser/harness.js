// Page side of test/browser.test.ts: the bundle as window.sam2, plus helpers that run prompts
// and pack results (base64) for the Node side to compare with the reference or with wasm.
import * as sam2 from '/dist/browser/sam2-tfjs.mjs';

function b64(u8) {
  let s = '';
  for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000));
  return btoa(s);
}
const floats = (arrays) => {
  const out = new Float32Array(arrays.reduce((n, a) => n + a.length, 0));
  let o = 0;
  for (const a of arrays) (out.set(a, o), (o += a.length));
  return b64(new Uint8Array(out.buffer));
};
/** Masks as bits, first pixel in the most significant bit (like the fixtures' packbits). */
const bits = (masks) => {
  const n = masks.reduce((k, m) => k + m.length, 0);
  const out = new Uint8Array(Math.ceil(n / 8));
  let i = 0;
  for (const m of masks) for (let j = 0; j < m.length; j++, i++) if (m[j]) out[i >> 3] |= 0x80 >> (i & 7);
  return b64(out);
};
const pack = (results) => ({
  logits: floats(results.flatMap((r) => r.lowResLogits)),
  scores: results.flatMap((r) => Array.from(r.scores)),
  masks: bits(results.flatMap((r) => r.masks)),
  count: results.reduce((k, r) => k + r.masks.length, 0),
});

/** The fixture's prompt cases (image_truck case.json format), in order, mask_from included. */
async function runPrompts(predictor, prompts) {
  const done = new Map();
  const out = {};
  for (const p of prompts) {
    const boxes = p.box ? (Array.isArray(p.box[0]) ? p.box : [p.box]) : [undefined];
    let maskInput;
    if (p.mask_from) {
      const src = done.get(p.mask_from);
      maskInput = src.lowResLogits[src.scores.indexOf(Math.max(...src.scores))];
    }
    const opts = boxes.map((box) => ({
      pointCoords: p.points,
      pointLabels: p.labels,
      box,
      maskInput,
      multimaskOutput: p.multimask,
    }));
    const res =
      opts.length === 1
        ? [await predictor.predict(opts[0])]
        : await predictor.predictBatch(opts, { multimaskOutput: p.multimask });
    done.set(p.id, res[0]);
    out[p.id] = pack(res);
  }
  return out;
}

/** The same picture as each image type setImage accepts. */
async function imageForms(url) {
  const img = new Image();
  img.src = url;
  await img.decode();
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(img, 0, 0);
  const imageData = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const bitmap = await createImageBitmap(await (await fetch(url)).blob(), { colorSpaceConversion: 'none' });
  return {
    HTMLImageElement: img,
    HTMLCanvasElement: canvas,
    ImageBitmap: bitmap,
    ImageData: imageData,
    raw: { data: new Uint8Array(imageData.data), width: imageData.width, height: imageData.height },
    url,
  };
}

// functions sent by page.evaluate come from tsx, which wraps named functions in __name(...)
window.__name = (fn) => fn;
window.sam2 = sam2;
window.harness = { runPrompts, imageForms, pack, bits, b64 };
window.sam2Ready = true;
