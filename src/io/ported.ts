/** Reading a ported weights folder (model.json + shards) back, from disk or over HTTP. */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as path from 'path';
import { Sam2Error } from '../errors';
import { validateConfig, type Sam2Config } from '../config';
import { isSam1Config, validateSam1Config, type Sam1Config } from '../config_sam1';
import { Weights } from '../weights';
import { MODEL_JSON } from './format';
import type { PortedModelJson } from './port';

export interface ReadPortedOptions {
  /** Override the input resolution (a multiple of 32). */
  imageSize?: number;
}

// In a browser every location is a URL; relative ones resolve against the page.
const pageUrl = (globalThis as { location?: { href: string } }).location?.href;
const isUrl = (s: string) => /^https?:\/\//.test(s) || (pageUrl !== undefined && typeof window !== 'undefined');

async function readBytes(base: string, name: string): Promise<Uint8Array> {
  if (isUrl(base)) {
    const url = new URL(name, new URL(base.endsWith('/') ? base : `${base}/`, pageUrl)).toString();
    let res: Response;
    try {
      res = await fetch(url);
    } catch (e) {
      // a server that is down or unreachable: say so, not "not valid JSON"
      const why = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new Sam2Error(
        'NETWORK',
        `Cannot fetch ${url} (${why?.code ?? why?.message ?? (e as Error).message}): check the URL and that the server is up.`,
      );
    }
    if (!res.ok) throw new Sam2Error('WEIGHTS', `Cannot fetch ${url}: HTTP ${res.status}.`);
    return new Uint8Array(await res.arrayBuffer());
  }
  const file = path.join(base, name);
  try {
    return fs.readFileSync(file);
  } catch {
    throw new Sam2Error(
      'WEIGHTS',
      `Cannot read ${file}. Port a checkpoint first: npx sam2-tfjs port <file.pt> --out ${base} (or npx sam2-tfjs download <model>).`,
    );
  }
}

/** Checks the manifest's structure, so a corrupt model.json fails with a WEIGHTS error and never reads outside the folder. */
function checkManifest(manifest: PortedModelJson, where: string): void {
  const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  const ok = manifest.weightsManifest.every(
    (g) =>
      g &&
      Array.isArray(g.paths) &&
      Array.isArray(g.weights) &&
      g.paths.every((p) => typeof p === 'string' && /^[\w.-]+$/.test(p) && !p.startsWith('.')) &&
      g.weights.every(
        (w) =>
          w &&
          typeof w.name === 'string' &&
          w.dtype === 'float32' &&
          Array.isArray(w.shape) &&
          w.shape.every(isCount) &&
          (w.quantization === undefined || (w.quantization && w.quantization.dtype === 'float16')),
      ),
  );
  if (!ok)
    throw new Sam2Error('WEIGHTS', `${where}/${MODEL_JSON} has a corrupt weights manifest: port the checkpoint again.`);
}

/**
 * Loads the tensors and config of a folder written by portCheckpoint (or its URL). Tensors
 * are float32 in TF.js layout, named by PyTorch key; float16 shards are dequantized.
 */
export async function readPortedWeights(
  dirOrUrl: string,
  options: ReadPortedOptions = {},
): Promise<{ config: Sam2Config | Sam1Config; weights: Weights }> {
  // the model.json path or URL itself names its folder
  if (/(^|[\\/])model\.json$/.test(dirOrUrl)) dirOrUrl = dirOrUrl.slice(0, -MODEL_JSON.length) || '.';
  let manifest: PortedModelJson;
  try {
    manifest = JSON.parse(new TextDecoder().decode(await readBytes(dirOrUrl, MODEL_JSON)));
  } catch (e) {
    if (e instanceof Sam2Error) throw e;
    throw new Sam2Error('WEIGHTS', `${dirOrUrl}/${MODEL_JSON} is not valid JSON: port the checkpoint again.`);
  }
  if (
    !manifest ||
    manifest.format !== 'sam2-tfjs-weights' ||
    !manifest.sam2Config ||
    !Array.isArray(manifest.weightsManifest)
  ) {
    throw new Sam2Error('WEIGHTS', `${dirOrUrl}/${MODEL_JSON} is not a sam2-tfjs weights manifest.`);
  }
  checkManifest(manifest, dirOrUrl);
  const config = { ...manifest.sam2Config, imageSize: options.imageSize ?? manifest.sam2Config.imageSize };
  try {
    if (isSam1Config(config)) validateSam1Config(config);
    else validateConfig(config);
  } catch (e) {
    if (e instanceof Sam2Error) throw e;
    throw new Sam2Error(
      'WEIGHTS',
      `${dirOrUrl}/${MODEL_JSON} has a corrupt sam2Config (${(e as Error).message}): port the checkpoint again.`,
    );
  }
  const entries: [string, tf.Tensor][] = [];
  try {
    for (const group of manifest.weightsManifest) {
      const parts = [];
      for (const p of group.paths) parts.push(await readBytes(dirOrUrl, p));
      const total = parts.reduce((n, p) => n + p.length, 0);
      const expected = group.weights.reduce(
        (n, w) => n + w.shape.reduce((a, b) => a * b, 1) * (w.quantization ? 2 : 4),
        0,
      );
      if (total !== expected) {
        throw new Sam2Error(
          'WEIGHTS',
          `${dirOrUrl}: shards hold ${total} bytes but the manifest needs ${expected}: the folder is incomplete or corrupt; port again.`,
        );
      }
      const buf = new Uint8Array(total);
      let off = 0;
      for (const p of parts) {
        buf.set(p, off);
        off += p.length;
      }
      const named = tf.io.decodeWeights(buf.buffer, group.weights as tf.io.WeightsManifestEntry[]);
      for (const w of group.weights) entries.push([w.name, named[w.name]]);
    }
  } catch (e) {
    tf.dispose(entries.map(([, t]) => t));
    throw e;
  }
  return { config, weights: new Weights(entries) };
}
