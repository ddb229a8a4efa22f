// The example page: load a ported model, set an image, click/drag to prompt, draw the overlay.
// Query parameters preset the controls: ?model=<model.json URL>&image=<URL>&backend=webgl&size=512
// window.sam2Example exposes the state (used by test/browser.test.ts).
import * as sam2 from '../../dist/browser/sam2-tfjs.mjs';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const canvas = $('view');
const ctx = canvas.getContext('2d');
const state = { model: null, predictor: null, image: null, points: [], box: null, busy: false, masks: 0, error: null };
window.sam2Example = state;

for (const [key, el] of [
  ['model', 'model'],
  ['backend', 'backend'],
  ['size', 'size'],
])
  if (params.has(key)) $(el).value = params.get(key);

function status(text) {
  $('status').textContent = text;
}

async function busy(what, fn) {
  state.busy = true;
  document.body.dataset.state = 'busy';
  status(`${what}…`);
  const t0 = performance.now();
  try {
    const out = await fn();
    status(`${what}: ${((performance.now() - t0) / 1000).toFixed(1)} s. ${describeBackend()}`);
    return out;
  } catch (e) {
    state.error = e.message;
    status(`${what} failed: ${e.message}`);
    throw e;
  } finally {
    state.busy = false;
    document.body.dataset.state = state.error ? 'error' : 'done';
  }
}

function describeBackend() {
  const info = sam2.backendInfo();
  return info ? `Backend ${info.tfBackend}: ${info.device}.` : '';
}

function draw(masks = []) {
  if (!state.image) return;
  const boxes = state.box ? [state.box] : [];
  const points = state.points.map((p) => ({ xy: p.xy, label: p.label }));
  ctx.putImageData(sam2.overlayImageData(state.image, masks, { points, boxes }), 0, 0);
  state.masks = masks.length;
}

async function loadModel() {
  await busy('Loading the model', async () => {
    state.predictor?.dispose();
    state.model?.dispose();
    const backend = $('backend').value === 'auto' ? undefined : $('backend').value;
    state.model = await sam2.loadSam2($('model').value, { backend, imageSize: Number($('size').value) });
    state.predictor = new sam2.SamPredictor(state.model);
  });
  if (state.image) await setImage(state.image);
}

async function setImage(source) {
  const rgb = await sam2.readImage(source);
  state.image = rgb;
  state.points = [];
  state.box = null;
  canvas.width = rgb.width;
  canvas.height = rgb.height;
  draw();
  if (!state.predictor) return;
  await busy('Encoding the image', () => state.predictor.setImage(rgb));
  $('auto').disabled = $('clear').disabled = false;
}

async function segment() {
  if (!state.predictor || state.busy) return;
  await busy('Segmenting', async () => {
    const single = state.points.length === 1 && !state.box;
    const r = await state.predictor.predict({
      pointCoords: state.points.length ? state.points.map((p) => p.xy) : undefined,
      pointLabels: state.points.length ? state.points.map((p) => p.label) : undefined,
      box: state.box ?? undefined,
      multimaskOutput: single, // one click is ambiguous: take the best of three
    });
    const best = r.scores.indexOf(Math.max(...r.scores));
    draw([r.masks[best]]);
  });
}

async function automatic() {
  if (!state.model || !state.image || state.busy) return;
  const generator = new sam2.AutomaticMaskGenerator(state.model, { pointsPerSide: Number(params.get('points') ?? 16) });
  const anns = await busy('Automatic masks', () =>
    generator.generate(state.image, { onProgress: (p) => status(`Automatic masks… ${p.done}/${p.total}`) }),
  );
  state.points = [];
  state.box = null;
  draw(anns.map((a) => a.segmentation));
  status(`${anns.length} automatic masks. ${describeBackend()}`);
}

function imageXY(ev) {
  const r = canvas.getBoundingClientRect();
  return [((ev.clientX - r.left) * canvas.width) / r.width, ((ev.clientY - r.top) * canvas.height) / r.height];
}

let down = null;
canvas.addEventListener('pointerdown', (ev) => (down = { xy: imageXY(ev), shift: ev.shiftKey }));
canvas.addEventListener('pointerup', (ev) => {
  if (!down) return;
  const [x0, y0] = down.xy;
  const [x1, y1] = imageXY(ev);
  if (Math.hypot(x1 - x0, y1 - y0) > 5)
    state.box = [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
  else state.points.push({ xy: [x1, y1], label: down.shift ? 0 : 1 });
  down = null;
  segment();
});
$('load').addEventListener('click', loadModel);
$('auto').addEventListener('click', automatic);
$('clear').addEventListener('click', () => ((state.points = []), (state.box = null), draw()));
$('file').addEventListener('change', async () => {
  const f = $('file').files?.[0];
  if (f) await setImage(f);
});

state.ready = (async () => {
  await loadModel();
  if (params.has('image')) await setImage(params.get('image'));
  else status(`Model loaded. Choose an image. ${describeBackend()}`);
})().catch((e) => status(`Failed: ${e.message}`));
