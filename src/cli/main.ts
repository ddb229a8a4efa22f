#!/usr/bin/env node
/**
 * The sam2-tfjs command line: `npx sam2-tfjs <command> --help`.
 * Commands: info, download, port, export-onnx, segment, auto, track, worker.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from 'util';
import { spawnSync } from 'child_process';
import { backendInfo, initBackend, type BackendChoice } from '../backend';
import { serveExample } from './serve_example';
import { Sam2Error } from '../errors';
import {
  downloadCheckpoint,
  isCompleteCheckpoint,
  weightsDir,
  DOWNLOADABLE_MODELS as MODEL_NAMES,
} from '../io/download';
import { portCheckpoint } from '../io/port';
import { loadSam2 } from '../load';
import { EXECUTOR_ENV, parseExecutorChoice, resolveExecutorChoice, type ExecutorChoice } from '../executor';
import { AutomaticMaskGenerator, type OutputMode } from '../predictor/automatic_mask_generator';
import { cocoDecodeRle, rleToMask, type CocoRle } from '../predictor/amg/rle';
import { readImage } from '../predictor/image_input';
import { SamPredictor } from '../predictor/sam_predictor';
import { VideoPredictor } from '../predictor/video_predictor';
import { BATCH_OPTIONS, WORKER_OPTIONS, WORKER_USAGE, runAutoBatch, runWorkerCli, type CliHelpers } from './batch';
import { maskToPng, overlayPng } from '../viz/masks';

type Options = Record<string, string | boolean | (string | boolean)[] | undefined>;

interface Command {
  usage: string;
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>;
  run(positionals: string[], o: Options): Promise<void>;
}

const MODEL_OPTIONS = {
  model: { type: 'string' },
  backend: { type: 'string' },
  'image-size': { type: 'string' },
  executor: { type: 'string' },
} as const;

class UsageError extends Error {}

function num(v: unknown, what: string): number {
  const n = Number(v);
  if (v === undefined || !Number.isFinite(n)) throw new UsageError(`${what} must be a number, got "${v}"`);
  return n;
}

/** "x,y[,label]" -> point and label (default 1); `flag` names the option in errors. */
function parsePoint(s: string, flag = '--point', whole = s): { xy: [number, number]; label: number } {
  const parts = s.split(',').map((v) => num(v, `${flag} ${whole}: each value`));
  if (parts.length < 2 || parts.length > 3)
    throw new UsageError(
      `${flag} takes ${flag === '--point' ? 'x,y[,label]' : 'frame:obj:x,y[,label]'}, got "${whole}"`,
    );
  const label = parts[2] ?? 1;
  if (label !== 0 && label !== 1)
    throw new UsageError(`${flag} ${whole}: the label must be 1 (foreground) or 0 (background), got ${label}`);
  return { xy: [parts[0], parts[1]], label };
}

/** Creates the folder an output file goes in, before any slow work (not after it). */
function outputDir(file: string | undefined): void {
  if (!file) return;
  const dir = path.dirname(path.resolve(file));
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new UsageError(`cannot create the folder ${dir} for ${file} (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
}

/** The package version, from the package.json above this file (src/cli or dist/cjs/cli). */
function version(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const f = path.join(dir, 'package.json');
    if (fs.existsSync(f)) {
      const pkg = JSON.parse(fs.readFileSync(f, 'utf8'));
      if (pkg.name === 'sam2-tfjs') return pkg.version;
    }
  }
  return 'unknown';
}

/** Checks the model options up front (before any slow work) and returns a loader. */
function modelLoader(o: Options) {
  if (!o.model)
    throw new UsageError(
      `--model is required: a folder written by \`sam2-tfjs port\`, or a model name (${MODEL_NAMES.join(', ')})`,
    );
  const model = String(o.model);
  const options = {
    backend: o.backend as BackendChoice | undefined,
    imageSize: o['image-size'] !== undefined ? num(o['image-size'], '--image-size') : undefined,
    executor: parseExecutorChoice(o.executor as string | undefined),
  };
  return async () => {
    const loaded = await loadSam2(await modelDir(model), options);
    // the library does not print: say here when the GPU is not used or a backend was skipped
    const info = backendInfo();
    for (const n of info?.notes ?? []) console.error(`sam2-tfjs: ${n}`);
    if (info && options.backend && info.skipped.length)
      console.error(`sam2-tfjs: using ${info.tfBackend}; skipped ${info.skipped.join('; ')}`);
    return loaded;
  };
}

/**
 * --model as a folder: a ported folder or URL as given; an official model name means
 * weights/<name>, downloaded and ported on first use.
 */
async function modelDir(model: string): Promise<string> {
  if (fs.existsSync(model) || /^https?:\/\//.test(model) || !(MODEL_NAMES as readonly string[]).includes(model))
    return model;
  const dir = path.join(weightsDir(), model);
  if (!fs.existsSync(path.join(dir, 'model.json'))) {
    const pt = path.join(weightsDir(), `${model}.pt`);
    // a complete .pt already there (e.g. downloaded by hand) is ported without downloading
    if (isCompleteCheckpoint(pt)) console.error(`${dir} has no weights yet: porting ${pt} once`);
    else
      console.error(
        `${dir} has no weights yet: downloading ${model} once (or run \`sam2-tfjs download ${model}\` yourself)`,
      );
    // stdout stays for the command's own output (--json)
    await downloadAndPort(model, pt, dir, {}, console.error);
  }
  return dir;
}

/** Downloads an official checkpoint (resuming a partial one) and ports it unless `noPort`. */
async function downloadAndPort(
  name: string,
  file: string,
  out: string,
  o: { baseUrl?: string; float16?: boolean; noPort?: boolean },
  log: (line: string) => void = console.log,
) {
  const progress = bar(`downloading ${name} (MiB)`);
  if (isCompleteCheckpoint(file)) log(`using ${file} (already downloaded)`);
  else
    await downloadCheckpoint(name, file, {
      baseUrl: o.baseUrl,
      onProgress: (r, t) => t && progress(Math.round(r / 2 ** 20), Math.round(t / 2 ** 20)),
    }).then(() => log(`downloaded ${file}`));
  if (o.noPort) return;
  const r = portCheckpoint(file, out, { float16: o.float16 });
  log(`ported ${r.config.name}: ${r.tensors} tensors, ${(r.bytes / 2 ** 20).toFixed(1)} MiB -> ${r.outDir}`);
}

/** A terminal progress bar on stderr (only on a TTY). */
function bar(label: string) {
  let last = -1;
  return (done: number, total: number) => {
    if (!process.stderr.isTTY || done === last) return; // redraw only when the count moves
    last = done;
    const w = 30;
    const f = Math.round((done / Math.max(1, total)) * w);
    process.stderr.write(
      `\r${label} [${'#'.repeat(f)}${'.'.repeat(w - f)}] ${done}/${total}${done >= total ? '\n' : ''}`,
    );
  };
}

const batchHelpers: CliHelpers = { num, usageError: (m) => new UsageError(m), modelLoader };

const COMMANDS: Record<string, Command> = {
  info: {
    usage:
      'sam2-tfjs info [--backend auto|tensorflow|node-gpu|node|wasm|cpu|webgpu|webgl] [--executor tfjs|onnxruntime|auto]\n' +
      '  Shows the tf.js backend in use, whether it runs on a GPU, its version, whether tfjs-node(-gpu) and onnxruntime-node were found, and the executor.',
    options: { backend: { type: 'string' }, executor: { type: 'string' } },
    async run(_p, o) {
      const info = await initBackend(o.backend as BackendChoice | undefined);
      const found = (m: string) => {
        try {
          require.resolve(m);
          return 'installed';
        } catch {
          return 'not installed';
        }
      };
      console.log(`backend: ${info.tfBackend} (${info.choice}${info.userSet ? ', set before' : ''})`);
      console.log(`device: ${info.device}`);
      console.log(`gpu: ${info.gpu ? 'yes' : 'no'}`);
      console.log(`tfjs: ${info.tfjsVersion}`);
      const t = info.wasmThreads;
      if (t) console.log(`wasm threads: ${t.threads}${t.reason ? ` (${t.reason})` : ''}`);
      console.log(`@tensorflow/tfjs-node-gpu (CUDA): ${found('@tensorflow/tfjs-node-gpu')}`);
      console.log(`@tensorflow/tfjs-node: ${found('@tensorflow/tfjs-node')}`);
      for (const s of info.skipped) console.log(`skipped ${s}`);
      for (const n of info.notes) console.log(`note: ${n}`);
      console.log(`onnxruntime-node: ${found('onnxruntime-node')}`);
      const choice: ExecutorChoice =
        parseExecutorChoice((o.executor as string | undefined) ?? process.env[EXECUTOR_ENV]) ?? 'tfjs';
      const ex = resolveExecutorChoice(choice);
      console.log(`executor: ${ex.executor} (${choice})${ex.reason ? `; ${ex.reason}` : ''}`);
    },
  },
  'export-onnx': {
    usage:
      'sam2-tfjs export-onnx <ported dir|model name> --out dir [--image-size n]\n' +
      '  Writes image_encoder.onnx, the prompt decoders (prompt_mask_decoder.onnx, prompt_decoder_no_mask.onnx),\n' +
      '  memory_encoder.onnx, memory_attention.onnx and sam2_onnx.json (inputs/outputs) for any ONNX runtime.',
    options: { out: { type: 'string' }, 'image-size': { type: 'string' }, backend: { type: 'string' } },
    async run(p, o) {
      if (p.length !== 1) throw new UsageError('export-onnx takes one ported folder or model name');
      if (!o.out) throw new UsageError('--out dir is required');
      // required here: the graph builder loads only for this command
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only for this command
      const { exportOnnx } = require('../export_onnx') as typeof import('../export_onnx');
      const r = await exportOnnx(await modelDir(p[0]), String(o.out), {
        imageSize: o['image-size'] !== undefined ? num(o['image-size'], '--image-size') : undefined,
        backend: o.backend as BackendChoice | undefined,
      });
      console.log(
        `exported ${r.manifest.model} at ${r.manifest.imageSize} px (opset ${r.manifest.opset}${r.cached ? ', cached graphs' : ''}):`,
      );
      for (const f of r.files) console.log(`  ${f}`);
    },
  },
  download: {
    usage:
      'sam2-tfjs download <model> [--out dir] [--checkpoint file.pt] [--no-port] [--float16] [--base-url url]\n' +
      `  Downloads an official checkpoint (${MODEL_NAMES.join(', ')})\n` +
      "  with resume, then ports it to weights/<model> (base URL: --base-url, $SAM2_TFJS_DOWNLOAD_BASE or Meta's).",
    options: {
      out: { type: 'string' },
      checkpoint: { type: 'string' },
      'no-port': { type: 'boolean' },
      float16: { type: 'boolean' },
      'base-url': { type: 'string' },
    },
    async run(p, o) {
      if (p.length !== 1) throw new UsageError(`download takes one model name: ${MODEL_NAMES.join(', ')}`);
      const name = p[0];
      const file = o.checkpoint ? String(o.checkpoint) : path.join(weightsDir(), `${name}.pt`);
      const out = o.out ? String(o.out) : path.join(weightsDir(), name);
      const baseUrl = o['base-url'] !== undefined ? String(o['base-url']) : undefined;
      await downloadAndPort(name, file, out, { baseUrl, float16: !!o.float16, noPort: !!o['no-port'] });
    },
  },
  port: {
    usage:
      'sam2-tfjs port <file.pt|file.safetensors> [--out dir] [--float16]\n  Converts an official SAM 2 / 2.1 checkpoint to TF.js weights (default: weights/<model name>).',
    options: { out: { type: 'string' }, float16: { type: 'boolean' } },
    async run(p, o) {
      if (p.length !== 1) throw new UsageError('port takes exactly one checkpoint file');
      const out = o.out
        ? String(o.out)
        : path.join('weights', path.basename(p[0]).replace(/\.(pt|pth|safetensors)$/, ''));
      const r = portCheckpoint(p[0], out, { float16: !!o.float16 });
      console.log(
        `ported ${r.config.name}: ${r.tensors} tensors, ${(r.bytes / 2 ** 20).toFixed(1)} MiB -> ${r.outDir}`,
      );
    },
  },
  segment: {
    usage:
      'sam2-tfjs segment <image> --model <dir|name> (--point x,y[,label])... [--box x0,y0,x1,y1] [--multimask]\n' +
      '                  --out mask.png [--overlay overlay.png] [--json] [--backend b] [--image-size n]\n' +
      '  Predicts masks for clicks/a box; writes the best mask (or mask-1.png... with --multimask) and prints scores.',
    options: {
      ...MODEL_OPTIONS,
      point: { type: 'string', multiple: true },
      box: { type: 'string' },
      multimask: { type: 'boolean' },
      out: { type: 'string' },
      overlay: { type: 'string' },
      json: { type: 'boolean' },
    },
    async run(p, o) {
      if (p.length !== 1) throw new UsageError('segment takes exactly one image');
      if (!o.out) throw new UsageError('--out mask.png is required');
      const loadModel = modelLoader(o);
      const points = ((o.point as string[] | undefined) ?? []).map((s) => parsePoint(s));
      const box = o.box
        ? String(o.box)
            .split(',')
            .map((v) => num(v, '--box'))
        : undefined;
      if (box && box.length !== 4) throw new UsageError('--box takes x0,y0,x1,y1');
      if (!points.length && !box) throw new UsageError('give at least one --point or a --box');
      outputDir(String(o.out));
      outputDir(o.overlay as string | undefined);
      const image = await readImage(p[0]);
      const m = await loadModel();
      const predictor = new SamPredictor(m);
      try {
        await predictor.setImage(image);
        const r = await predictor.predict({
          pointCoords: points.length ? points.map((q) => q.xy) : undefined,
          pointLabels: points.length ? points.map((q) => q.label) : undefined,
          box,
          multimaskOutput: !!o.multimask,
        });
        const order = Array.from(r.scores.keys()).sort((a, b) => r.scores[b] - r.scores[a]);
        const out = String(o.out);
        const files: string[] = [];
        for (const [rank, i] of order.entries()) {
          const file = order.length === 1 ? out : out.replace(/(\.png)?$/, `-${rank + 1}.png`);
          fs.writeFileSync(file, await maskToPng(r.masks[i], r.width, r.height));
          files.push(file);
        }
        if (o.overlay) {
          fs.writeFileSync(
            String(o.overlay),
            await overlayPng(image, [r.masks[order[0]]], {
              points,
              boxes: box ? [box as [number, number, number, number]] : [],
            }),
          );
        }
        const scores = order.map((i) => Number(r.scores[i].toFixed(4)));
        if (o.json) console.log(JSON.stringify({ masks: files, scores, width: r.width, height: r.height }));
        else files.forEach((f, k) => console.log(`${f}\tscore ${scores[k]}`));
      } finally {
        predictor.dispose();
        m.dispose();
      }
    },
  },
  auto: {
    usage:
      'sam2-tfjs auto <image> --model <dir|name> --out masks.json [--overlay overlay.png] [--points-per-side 32]\n' +
      '               [--pred-iou-thresh 0.8] [--stability-score-thresh 0.95] [--box-nms-thresh 0.7]\n' +
      '               [--crop-n-layers 0] [--min-mask-region-area 0] [--points-per-batch 64] [--backend b] [--image-size n]\n' +
      '  Segments everything; writes COCO RLE annotations (JSON) and a coloured overlay.\n' +
      'sam2-tfjs auto <images|dirs...> --model <dir|name> --out-dir OUT [--overwrite] [--queue redis://HOST:PORT[/DB]] [AMG options as above]\n' +
      '  Every .jpg/.jpeg/.png under the inputs -> OUT/<relative path>.json (SA-1B layout); skips finished ones\n' +
      '  unless --overwrite. --queue hands the images to `sam2-tfjs worker`s and writes their results.',
    options: {
      ...MODEL_OPTIONS,
      ...BATCH_OPTIONS,
      out: { type: 'string' },
      overlay: { type: 'string' },
      'points-per-side': { type: 'string' },
      'points-per-batch': { type: 'string' },
      'pred-iou-thresh': { type: 'string' },
      'stability-score-thresh': { type: 'string' },
      'box-nms-thresh': { type: 'string' },
      'crop-n-layers': { type: 'string' },
      'min-mask-region-area': { type: 'string' },
    },
    async run(p, o) {
      if (o['out-dir'] !== undefined || o.queue !== undefined) return runAutoBatch(p, o, batchHelpers);
      if (p.length !== 1) throw new UsageError('auto takes exactly one image');
      if (!o.out) throw new UsageError('--out masks.json is required (or --out-dir OUT for many images)');
      const loadModel = modelLoader(o);
      const opt = (k: string) => (o[k] !== undefined ? num(o[k], `--${k}`) : undefined);
      outputDir(String(o.out));
      outputDir(o.overlay as string | undefined);
      const image = await readImage(p[0]);
      const m = await loadModel();
      const gen = new AutomaticMaskGenerator(m, {
        pointsPerSide: opt('points-per-side'),
        pointsPerBatch: opt('points-per-batch'),
        predIouThresh: opt('pred-iou-thresh'),
        stabilityScoreThresh: opt('stability-score-thresh'),
        boxNmsThresh: opt('box-nms-thresh'),
        cropNLayers: opt('crop-n-layers'),
        minMaskRegionArea: opt('min-mask-region-area'),
        outputMode: 'coco_rle' as OutputMode,
      });
      try {
        const progress = bar('decoding point batches');
        const anns = await gen.generate(image, { onProgress: (q) => progress(q.done, q.total) });
        fs.writeFileSync(String(o.out), JSON.stringify(anns));
        if (o.overlay) {
          const masks = anns.map((a) => rleToMask(cocoDecodeRle(a.segmentation as CocoRle)));
          fs.writeFileSync(String(o.overlay), await overlayPng(image, masks));
        }
        console.log(`${anns.length} masks -> ${o.out}`);
        if (!anns.length) console.error(noMasksReason(gen));
      } finally {
        gen.dispose();
        m.dispose();
      }
    },
  },
  track: {
    usage:
      'sam2-tfjs track <frames-dir|video.mp4> --model <dir|name> --prompt frame:obj:x,y[,label] ... --out dir/ [--reverse] [--backend b] [--image-size n]\n' +
      '  Tracks the prompted objects through the video; writes per-frame mask PNGs (one per object) and overlays.',
    options: {
      ...MODEL_OPTIONS,
      prompt: { type: 'string', multiple: true },
      out: { type: 'string' },
      reverse: { type: 'boolean' },
    },
    async run(p, o) {
      if (p.length !== 1) throw new UsageError('track takes one frames directory (or .mp4 with ffmpeg installed)');
      if (!o.out) throw new UsageError('--out dir/ is required');
      const loadModel = modelLoader(o);
      const prompts = ((o.prompt as string[] | undefined) ?? []).map((s) => {
        const m = /^(\d+):(-?\d+):(.+)$/.exec(s);
        if (!m) throw new UsageError(`--prompt takes frame:obj:x,y[,label], got "${s}"`);
        return { frameIdx: Number(m[1]), objId: Number(m[2]), ...parsePoint(m[3], '--prompt', s) };
      });
      if (!prompts.length) throw new UsageError('give at least one --prompt frame:obj:x,y');
      const out = String(o.out);
      const isMp4 = p[0].toLowerCase().endsWith('.mp4');
      if (isMp4) checkFfmpeg(); // before anything is created
      outputDir(path.join(out, 'x'));
      const framesDir = isMp4 ? splitVideo(p[0], out) : p[0];
      const m = await loadModel();
      const video = new VideoPredictor(m);
      const state = await video.initState(framesDir);
      try {
        for (const q of prompts) {
          await video.addNewPointsOrBox(state, {
            frameIdx: q.frameIdx,
            objId: q.objId,
            points: [q.xy],
            labels: [q.label],
            clearOldPoints: false,
          });
        }
        const progress = bar('tracking frames');
        let done = 0;
        for await (const r of video.propagateInVideo(state, { reverse: !!o.reverse })) {
          const image = await state.frames[r.frameIdx]();
          const name = String(r.frameIdx).padStart(5, '0');
          for (const [i, id] of r.objIds.entries()) {
            fs.writeFileSync(
              path.join(out, `${name}_obj${id}.png`),
              await maskToPng(r.masks[i], state.width, state.height),
            );
          }
          fs.writeFileSync(path.join(out, `${name}_overlay.png`), await overlayPng(image, r.masks));
          progress(++done, state.numFrames);
        }
        console.log(`${done} frames x ${state.objIds.length} objects -> ${out}`);
      } finally {
        video.resetState(state);
        video.dispose();
        m.dispose();
      }
    },
  },
  'serve-example': {
    usage:
      'sam2-tfjs serve-example --model <dir|name> [--image photo.jpg] [--port 8080] [--host 127.0.0.1]\n' +
      '  Serves the browser example (click to segment, drag a box, automatic masks) with the browser bundle and the model.',
    options: {
      model: { type: 'string' },
      image: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
    },
    async run(_p, o) {
      if (!o.model) throw new UsageError('--model is required: a folder written by `sam2-tfjs port`, or a model name');
      const { url } = await serveExample({
        weightsDir: await modelDir(String(o.model)),
        image: o.image as string | undefined,
        port: o.port !== undefined ? num(o.port, '--port') : undefined,
        host: o.host as string | undefined,
      });
      console.log(`open ${url} (Ctrl+C stops the server)`);
      await new Promise(() => undefined); // serve until the process is stopped
    },
  },
};

COMMANDS.worker = {
  usage: WORKER_USAGE,
  options: { ...MODEL_OPTIONS, ...WORKER_OPTIONS },
  run: (p, o) => runWorkerCli(p, o, batchHelpers),
};

const NO_FFMPEG = 'an .mp4 input needs ffmpeg on PATH (or pass a directory of frames named 00000.jpg, 00001.jpg, ...)';

function checkFfmpeg(): void {
  if (spawnSync('ffmpeg', ['-version']).error) throw new UsageError(NO_FFMPEG);
}

/** Splits an .mp4 into numbered JPEG frames with ffmpeg (when installed); removes them if it fails. */
function splitVideo(file: string, out: string): string {
  const dir = path.join(out, 'frames');
  const existed = fs.existsSync(dir);
  fs.mkdirSync(dir, { recursive: true });
  const r = spawnSync('ffmpeg', [
    '-loglevel',
    'error',
    '-i',
    file,
    '-q:v',
    '2',
    '-start_number',
    '0',
    path.join(dir, '%05d.jpg'),
  ]);
  if (r.error || r.status !== 0) {
    if (!existed) fs.rmSync(dir, { recursive: true, force: true });
    if (r.error) throw new UsageError(NO_FFMPEG);
    throw new UsageError(`ffmpeg could not read ${file}: ${String(r.stderr).trim().split('\n')[0]}`);
  }
  return dir;
}

/** Why `auto` found no masks: how many candidates each threshold dropped, and which option to lower. */
function noMasksReason(gen: AutomaticMaskGenerator): string {
  const s = gen.lastStats;
  const opt = gen.options;
  const parts = [
    s.belowPredIou && `${s.belowPredIou} at or below --pred-iou-thresh ${opt.predIouThresh}`,
    s.belowStability && `${s.belowStability} below --stability-score-thresh ${opt.stabilityScoreThresh}`,
    s.nearCropEdge && `${s.nearCropEdge} touching a crop edge`,
    s.nmsDuplicates && `${s.nmsDuplicates} duplicates (--box-nms-thresh ${opt.boxNmsThresh})`,
  ].filter(Boolean);
  return `sam2-tfjs auto: no masks: of ${s.candidates} candidate masks, ${parts.join(', ') || 'none passed'}; lower those thresholds to keep more.`;
}

function help(): string {
  return [
    'usage: sam2-tfjs <command> [options]   (sam2-tfjs <command> --help for details; sam2-tfjs --version)',
    '',
    ...Object.values(COMMANDS).map((c) => c.usage.split('\n')[0]),
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-v' || name === 'version') {
    console.log(version());
    return 0;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`sam2-tfjs: unknown command "${name}"\n${help()}`);
    return 2;
  }
  try {
    const { values, positionals } = parseArgs({
      args: rest,
      options: { ...cmd.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
    });
    if (values.help) {
      console.log(cmd.usage);
      return 0;
    }
    process.env.SAM2_TFJS_QUIET ??= '1';
    await cmd.run(positionals, values as Options);
    return 0;
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    // one line each (the README's promise); `--help` shows the usage
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`sam2-tfjs ${name}: ${msg}`);
      return 2;
    }
    // a file-system error (e.g. EACCES writing --out) is bad input too, not a crash
    const sys = e as NodeJS.ErrnoException;
    if (e instanceof Sam2Error || (typeof sys.code === 'string' && sys.syscall)) {
      console.error(`sam2-tfjs ${name}: ${msg}`);
      return 1;
    }
    console.error(`sam2-tfjs ${name}: ${(e as Error).stack}`);
    return 1;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
