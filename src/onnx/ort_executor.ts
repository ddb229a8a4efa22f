/**
 * The ONNX Runtime executor: the image encoder and the prompt decoder run as ONNX graphs built
 * from our own layers (src/onnx/models.ts). Encoder outputs become tf tensors once (what
 * SamPredictor caches) and stay on the host as ONNX Runtime inputs, so each prompt costs one
 * decoder run and no feature copies.
 */
import * as os from 'os';
import * as tf from '@tensorflow/tfjs';
import type * as Ort from 'onnxruntime-node';
import { Sam2Error } from '../errors';
import { tryLoadOnnxRuntime, type ExecutionProvider, type ExecutorInfo } from '../executor';
import type { DecodeRequest, DecodedPrompts, Sam2Executor } from '../model/executor';
import type { ImageFeatures } from '../model/image_encoder';
import type { Sam2Model } from '../model/sam2';
import type { OnnxGraphs } from './graphs';
import { IMAGE_SIDE_NAMES, buildMemoryAttention, buildMemoryEncoder } from './models';

export interface OrtExecutorOptions {
  /** 'cpu' (default) or 'cuda' (falls back to cpu with a reason when it does not load). */
  executionProvider?: ExecutionProvider;
  /** Intra-op threads (default: os.availableParallelism()). */
  threads?: number;
}

/** Prompt sets per decoder run (as SamPredictor's TF.js path). */
const DECODER_CHUNK = 16;

type Feeds = Record<'image_embed' | 'high_res_feats_0' | 'high_res_feats_1', Ort.Tensor> & {
  /** The image encoder's image-side projections (IMAGE_SIDE_NAMES), for the no-mask decoder. */
  imageSide?: Record<string, Ort.Tensor>;
};

export class OrtExecutor implements Sam2Executor {
  /** ONNX Runtime inputs of features this executor computed or has seen, per image. */
  private readonly feeds = new WeakMap<tf.Tensor, Map<number, Feeds>>();
  private noMask?: Ort.Tensor;

  private constructor(
    private readonly model: Sam2Model,
    private readonly ort: typeof Ort,
    private encoder: Ort.InferenceSession | undefined,
    private decoder: Ort.InferenceSession | undefined,
    /** The decoder for prompts without a mask input (prompt_decoder_no_mask), when its graph exists. */
    private decoderNoMask: Ort.InferenceSession | undefined,
    readonly info: ExecutorInfo,
    /** Where the graphs came from, for `info`. */
    readonly graphs: Pick<OnnxGraphs, 'dir' | 'cached'>,
    /** Options of the sessions (provider, threads), for the video sessions made later. */
    private readonly sessionOptions: Ort.InferenceSession.SessionOptions,
    /** The video graphs, when built or cached with the others. */
    private readonly videoGraphs: Pick<OnnxGraphs, 'memoryEncoder' | 'memoryAttention'> = {},
  ) {}

  /** The video sessions, created on the first frame that needs them. */
  private memoryAttention?: Promise<Ort.InferenceSession>;
  private memoryEncoder?: Promise<Ort.InferenceSession>;

  /** Creates sessions for both graphs; CUDA when asked and it loads, else CPU with a reason. */
  static async create(model: Sam2Model, graphs: OnnxGraphs, options: OrtExecutorOptions = {}): Promise<OrtExecutor> {
    const { ort: loaded, reason } = tryLoadOnnxRuntime();
    if (!loaded) throw new Sam2Error('BACKEND', `Cannot use ONNX Runtime: ${reason}.`);
    const ort = loaded as typeof Ort;
    const threads = options.threads ?? os.availableParallelism?.() ?? os.cpus().length;
    const fallback: string[] = [];
    const optionsFor = (provider: ExecutionProvider): Ort.InferenceSession.SessionOptions => ({
      executionProviders: [provider],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      // ONNX Runtime's pool threads spin after each run: they took the cores from the mask
      // upsampling that follows a decode (one click 48-54 -> 36-42 ms), and encodes gain nothing
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    });
    const sessions = async (provider: ExecutionProvider) =>
      Promise.all(
        [graphs.imageEncoder, graphs.promptMaskDecoder, graphs.promptDecoderNoMask].map((g) =>
          g ? ort.InferenceSession.create(g, optionsFor(provider)) : undefined,
        ),
      );
    let provider: ExecutionProvider = options.executionProvider ?? 'cpu';
    let pair: (Ort.InferenceSession | undefined)[];
    try {
      pair = await sessions(provider);
    } catch (e) {
      if (provider === 'cpu')
        throw new Sam2Error(
          'BACKEND',
          `ONNX Runtime could not load the graphs: ${(e as Error).message.split('\n')[0]}`,
        );
      fallback.push(`${provider}: ${(e as Error).message.split('\n')[0]}`);
      provider = 'cpu';
      pair = await sessions(provider);
    }
    const info: ExecutorInfo = {
      executor: 'onnxruntime',
      provider,
      threads,
      version: ort.env.versions?.node ?? ort.env.versions?.common,
      fallback: fallback.length ? fallback : undefined,
    };
    return new OrtExecutor(
      model,
      ort,
      pair[0]!,
      pair[1]!,
      pair[2],
      info,
      { dir: graphs.dir, cached: graphs.cached },
      optionsFor(provider),
      { memoryEncoder: graphs.memoryEncoder, memoryAttention: graphs.memoryAttention },
    );
  }

  private sessions(): [Ort.InferenceSession, Ort.InferenceSession] {
    if (!this.encoder || !this.decoder)
      throw new Sam2Error('STATE', 'This ONNX Runtime executor was disposed (its model was disposed).');
    return [this.encoder, this.decoder];
  }

  async imageFeatures(x: tf.Tensor4D): Promise<ImageFeatures> {
    const [encoder] = this.sessions();
    const [b, s, , c] = x.shape;
    const data = (await x.data()) as Float32Array;
    const perImage: Feeds[] = [];
    for (let i = 0; i < b; i++) {
      const image = new this.ort.Tensor('float32', data.slice(i * s * s * c, (i + 1) * s * s * c), [1, s, s, c]);
      const out = await encoder.run({ image });
      // the decoders' inputs only (vision_features is for video frames)
      perImage.push({
        image_embed: out.image_embed,
        high_res_feats_0: out.high_res_feats_0,
        high_res_feats_1: out.high_res_feats_1,
        imageSide: IMAGE_SIDE_NAMES.every((n) => out[n])
          ? Object.fromEntries(IMAGE_SIDE_NAMES.map((n) => [n, out[n]]))
          : undefined,
      });
    }
    const toTf = (name: Exclude<keyof Feeds, 'imageSide'>) =>
      tf.tidy(() => {
        const parts = perImage.map((f) =>
          tf.tensor4d(f[name].data as Float32Array, f[name].dims as [number, number, number, number]),
        );
        return parts.length === 1 ? parts[0] : (tf.concat(parts, 0) as tf.Tensor4D);
      });
    const features: ImageFeatures = {
      imageEmbed: toTf('image_embed'),
      highResFeats: [toTf('high_res_feats_0'), toTf('high_res_feats_1')],
    };
    this.feeds.set(features.imageEmbed, new Map(perImage.map((f, i) => [i, f])));
    return features;
  }

  async frameFeatures(x: tf.Tensor4D): Promise<{ highRes: [tf.Tensor4D, tf.Tensor4D]; top: tf.Tensor4D }> {
    const [encoder] = this.sessions();
    const image = new this.ort.Tensor('float32', Float32Array.from((await x.data()) as Float32Array), x.shape);
    const out = await encoder.run({ image });
    const toTf = (t: Ort.Tensor) => tf.tensor4d(t.data as Float32Array, t.dims as [number, number, number, number]);
    return {
      highRes: [toTf(out.high_res_feats_0), toTf(out.high_res_feats_1)],
      top: toTf(out.vision_features),
    };
  }

  async encodeMemory(pixFeat: tf.Tensor4D, mask: tf.Tensor4D): Promise<tf.Tensor4D> {
    this.sessions(); // disposed check
    this.memoryEncoder ??= this.ort.InferenceSession.create(
      this.videoGraphs.memoryEncoder ?? buildMemoryEncoder(this.model).bytes,
      this.sessionOptions,
    );
    const session = await this.memoryEncoder;
    const host = async (t: tf.Tensor) =>
      new this.ort.Tensor('float32', Float32Array.from((await t.data()) as Float32Array), t.shape);
    const y = (await session.run({ pix_feat: await host(pixFeat), mask: await host(mask) })).vision_features;
    return tf.tensor4d(y.data as Float32Array, y.dims as [number, number, number, number]);
  }

  async attendMemory(x: tf.Tensor2D, keysT: tf.Tensor2D[], values: tf.Tensor2D): Promise<tf.Tensor2D> {
    this.sessions(); // disposed check
    // built on first use: image-only users never pay for it
    this.memoryAttention ??= this.ort.InferenceSession.create(
      buildMemoryAttention(this.model).bytes,
      this.sessionOptions,
    );
    const session = await this.memoryAttention;
    const T = this.ort.Tensor;
    const host = async (t: tf.Tensor2D) =>
      new T('float32', Float32Array.from((await t.data()) as Float32Array), t.shape);
    const feeds: Record<string, Ort.Tensor> = { x: await host(x), values: await host(values) };
    for (let l = 0; l < keysT.length; l++) feeds[`keys_t_${l}`] = await host(keysT[l]);
    const y = (await session.run(feeds)).y;
    return tf.tensor2d(y.data as Float32Array, y.dims as [number, number]);
  }

  /** Decoder inputs of image `i` of `f`: kept from the encode, or copied from tf once (e.g. setImageFeatures). */
  private featureFeeds(f: ImageFeatures, i: number): Feeds {
    let per = this.feeds.get(f.imageEmbed);
    if (!per) this.feeds.set(f.imageEmbed, (per = new Map()));
    let feeds = per.get(i);
    if (!feeds) {
      const one = (t: tf.Tensor4D) => {
        const x = t.shape[0] === 1 ? t : tf.slice(t, [i, 0, 0, 0], [1, -1, -1, -1]);
        const data = x.dataSync() as Float32Array;
        if (x !== t) x.dispose();
        return new this.ort.Tensor('float32', Float32Array.from(data), [1, ...t.shape.slice(1)]);
      };
      feeds = {
        image_embed: one(f.imageEmbed),
        high_res_feats_0: one(f.highResFeats[0]),
        high_res_feats_1: one(f.highResFeats[1]),
      };
      per.set(i, feeds);
    }
    return feeds;
  }

  async decode(req: DecodeRequest): Promise<DecodedPrompts | undefined> {
    const [b, n] = req.coords.shape;
    if (n === 0) return undefined; // mask-only prompts have no padding token: the TF.js decoder handles them
    if (b <= DECODER_CHUNK) return this.decodeChunk(req);
    // bounded activations, as SamPredictor's TF.js path (a batch of 64 needs gigabytes at once)
    const parts: DecodedPrompts[] = [];
    try {
      for (let i = 0; i < b; i += DECODER_CHUNK) {
        const k = Math.min(DECODER_CHUNK, b - i);
        const sub = tf.tidy(() => ({
          coords: tf.slice(req.coords, [i, 0, 0], [k, -1, -1]),
          labels: tf.slice(req.labels, [i, 0], [k, -1]),
          maskInput: req.maskInput && tf.slice(req.maskInput, [i, 0, 0, 0], [k, -1, -1, -1]),
        }));
        try {
          parts.push((await this.decodeChunk({ ...req, ...sub }))!);
        } finally {
          tf.dispose([sub.coords, sub.labels, ...(sub.maskInput ? [sub.maskInput] : [])]);
        }
      }
      return tf.tidy(() => ({
        lowResMasks: tf.concat(parts.map((p) => p.lowResMasks)) as tf.Tensor4D,
        ious: tf.concat(parts.map((p) => p.ious)) as tf.Tensor2D,
        objectScoreLogits: tf.concat(parts.map((p) => p.objectScoreLogits)) as tf.Tensor2D,
      }));
    } finally {
      for (const p of parts) tf.dispose([p.lowResMasks, p.ious, p.objectScoreLogits]);
    }
  }

  private async decodeChunk(req: DecodeRequest): Promise<DecodedPrompts> {
    const [b, n] = req.coords.shape;
    const [, decoder] = this.sessions();
    const m = this.model.promptEncoder.maskInputSize;
    const T = this.ort.Tensor;
    const labels = req.labels.dtype === 'float32' ? req.labels : tf.cast(req.labels, 'float32');
    const labelData = Float32Array.from((await labels.data()) as Float32Array);
    if (labels !== req.labels) labels.dispose();
    let mask: Ort.Tensor;
    if (req.maskInput) {
      mask = new T(
        'float32',
        Float32Array.from((await req.maskInput.data()) as Float32Array),
        req.maskInput.shape as number[],
      );
    } else {
      mask = this.noMask ??= new T('float32', new Float32Array(m * m), [1, m, m, 1]);
    }
    const { imageSide, ...features } = this.featureFeeds(req.features, req.imageIndex);
    const prompts = {
      ...features,
      point_coords: new T('float32', Float32Array.from((await req.coords.data()) as Float32Array), [b, n, 2]),
      point_labels: new T('float32', labelData, [b, n]),
    };
    // without a mask input, the decoder that takes the image-side projections from the encode
    // (features from setImageFeatures have none: the general decoder computes them)
    const out =
      !req.maskInput && imageSide && this.decoderNoMask
        ? await this.decoderNoMask.run({ ...prompts, ...imageSide })
        : await decoder.run({
            ...prompts,
            mask_input: mask,
            has_mask_input: new T('float32', Float32Array.of(req.maskInput ? 1 : 0), [1]),
          });
    return tf.tidy(() => {
      const low = out.low_res_masks;
      const masks = tf.tensor4d(low.data as Float32Array, low.dims as [number, number, number, number]);
      const ious = tf.tensor2d(out.iou_predictions.data as Float32Array, [b, 4]);
      const objectScoreLogits = tf.tensor2d(out.object_score_logits.data as Float32Array, [b, 1]);
      // the same selection as MaskDecoder.forward
      const [, h, w] = masks.shape;
      let sel: [tf.Tensor4D, tf.Tensor2D];
      if (req.multimaskOutput) sel = [tf.slice(masks, [0, 0, 0, 1], [b, h, w, 3]), tf.slice(ious, [0, 1], [b, 3])];
      else if (this.model.config.dynamicMultimaskViaStability)
        sel = this.model.maskDecoder.dynamicMultimaskViaStability(masks, ious);
      else sel = [tf.slice(masks, [0, 0, 0, 0], [b, h, w, 1]), tf.slice(ious, [0, 0], [b, 1])];
      return { lowResMasks: sel[0], ious: sel[1], objectScoreLogits };
    });
  }

  dispose(): void {
    void this.encoder?.release();
    void this.decoder?.release();
    void this.decoderNoMask?.release();
    for (const m of [this.memoryAttention, this.memoryEncoder]) void m?.then((x) => x.release()).catch(() => undefined);
    this.encoder = this.decoder = this.decoderNoMask = this.memoryAttention = this.memoryEncoder = undefined;
  }
}
