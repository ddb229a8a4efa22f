/**
 * Honest tf.layers: every registered Sam2Layer class is rebuilt through the serialization
 * registry from its JSON-round-tripped getConfig(), loaded with the same weights, and must give
 * the same output through `apply` (the tf.layers entry point), with the shapes its
 * computeOutputShape predicts. The image encoder also runs as a tf.LayersModel.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { Sam2Layer, shapeList, tensorList, type Shape } from '../../src/layers/base';
import { Attention } from '../../src/layers/attention';
import { Conv2d, LayerNorm, Linear, Mlp } from '../../src/layers/common';
import { CXBlock } from '../../src/layers/cx_block';
import { MultiScaleBlock } from '../../src/layers/hiera_block';
import { VitBlock } from '../../src/layers/vit_block';
import { Sam1ImageEncoder } from '../../src/model/sam1/image_encoder';
import type { Sam1Config } from '../../src/config_sam1';
import { RoPEAttention } from '../../src/layers/rope_attention';
import { TwoWayAttentionBlock, TwoWayTransformer } from '../../src/layers/two_way_transformer';
import { FpnNeck } from '../../src/model/fpn_neck';
import { Hiera } from '../../src/model/hiera';
import { ImageEncoder } from '../../src/model/image_encoder';
import { MaskDecoder } from '../../src/model/mask_decoder';
import { MemoryAttention, MemoryAttentionLayer } from '../../src/model/memory_attention';
import { MemoryEncoder } from '../../src/model/memory_encoder';
import { PromptEncoder } from '../../src/model/prompt_encoder';
import { TrackingParams } from '../../src/model/tracker';
import { makeConfig } from '../../src/config';
import { Weights } from '../../src/weights';
import { expectNoLeak } from '../helpers';
import { tinyWeights } from '../models';

// Load every source file that registers a class, so the registry holds all of them (a new file
// with a new layer is found too).
const SRC = path.join(__dirname, '..', '..', 'src');
const registering = (fs.readdirSync(SRC, { recursive: true }) as string[])
  .filter((f) => f.endsWith('.ts'))
  .map((f) => path.join(SRC, f))
  .filter((f) => fs.readFileSync(f, 'utf8').includes('tf.serialization.registerClass('));
for (const f of registering) require(f);
const registerCalls = registering.reduce(
  (n, f) => n + (fs.readFileSync(f, 'utf8').match(/tf\.serialization\.registerClass\(/g)?.length ?? 0),
  0,
);

type Entry = [
  tf.serialization.SerializableConstructor<tf.serialization.Serializable>,
  tf.serialization.FromConfigMethod<tf.serialization.Serializable>,
];
const registered: [string, Entry][] = Object.entries(tf.serialization.SerializationMap.getMap().classNameMap).filter(
  ([, [cls]]) => cls.prototype instanceof Sam2Layer,
);

/** SAM 2.1 Hiera-T at 128 px: 8x8 embedding grid, stages 32..4 px. The weights do not depend on the size. */
const cfg = makeConfig('sam2.1', 'tiny', 128);
const rand = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

interface Case {
  make: () => Sam2Layer;
  /** Formula weights of SAM 2.1 Hiera-T (model components), else random ones (small blocks). */
  formula?: boolean;
  inputs: () => tf.Tensor[];
  kwargs?: tf.serialization.ConfigDict;
}

const tinySam1: Sam1Config = {
  kind: 'sam1',
  name: 'tiny_vit',
  size: 'vit_b',
  imageSize: 64,
  backboneStride: 16,
  vit: {
    embedDim: 16,
    depth: 2,
    numHeads: 2,
    globalAttnIndexes: [1],
    windowSize: 2,
    patchSize: 16,
    mlpRatio: 4,
    outChans: 8,
    pretrainImgSize: 64,
  },
};

const cases: Record<string, Case> = {
  Sam2Linear: { make: () => new Linear('l', 8, 16), inputs: () => [rand([2, 3, 8], 1)] },
  Sam2LayerNorm: { make: () => new LayerNorm('n', 8, 1e-6), inputs: () => [rand([2, 3, 8], 1)] },
  // odd size: floor((9 + 2 - 3) / 2) + 1 = 5
  Sam2Conv2d: {
    make: () => new Conv2d('c', 3, 8, { kernel: 3, stride: 2, padding: 1 }),
    inputs: () => [rand([1, 9, 9, 3], 1)],
  },
  Sam2Mlp: { make: () => new Mlp('m', 8, 16, 4, 3, 'gelu', true), inputs: () => [rand([2, 8], 1)] },
  Sam2Attention: {
    make: () => new Attention('a', 16, 2, 2, 8),
    inputs: () => [rand([1, 5, 16], 1), rand([1, 7, 8], 2), rand([1, 7, 8], 3)],
  },
  Sam2CXBlock: { make: () => new CXBlock('x', 8), inputs: () => [rand([1, 6, 6, 8], 1)] },
  // windows padded (10 -> 12), queries pooled, cropped back to 5
  Sam2MultiScaleBlock: {
    make: () => new MultiScaleBlock('b', { dim: 8, dimOut: 16, numHeads: 2, mlpRatio: 4, windowSize: 4, qPool: true }),
    inputs: () => [rand([1, 10, 10, 8], 1)],
  },
  // keys: two memories of the 4x4 query grid (rotated) and 3 pointer tokens (not rotated)
  Sam2RoPEAttention: {
    make: () => new RoPEAttention('r', 16, 8),
    inputs: () => [rand([16, 16], 1), rand([35, 8], 2), rand([35, 8], 3)],
    kwargs: { numKExcludeRope: 3 },
  },
  Sam2TwoWayAttentionBlock: {
    make: () => new TwoWayAttentionBlock('t', 16, 2, 32, false),
    inputs: () => [rand([2, 5, 16], 1), rand([2, 12, 16], 2), rand([2, 5, 16], 3), rand([1, 12, 16], 4)],
  },
  Sam2TwoWayTransformer: {
    make: () => new TwoWayTransformer('tt', 2, 16, 2, 32),
    inputs: () => [rand([2, 12, 16], 1), rand([1, 12, 16], 2), rand([2, 5, 16], 3)],
  },
  Sam2FpnNeck: {
    make: () => new FpnNeck(cfg.neck),
    formula: true,
    inputs: () => [96, 192, 384, 768].map((c, i) => rand([1, 32 >> i, 32 >> i, c], i + 1)),
  },
  Sam2Hiera: { make: () => new Hiera(cfg.trunk), formula: true, inputs: () => [rand([1, 128, 128, 3], 1)] },
  // SAM 1: windows padded (6 -> 8), relative positions stored for the window (2 * 4 - 1)
  Sam2VitBlock: {
    make: () => new VitBlock('v', { dim: 16, numHeads: 2, mlpRatio: 4, windowSize: 4, inputSize: 4 }, 7),
    inputs: () => [rand([1, 6, 6, 16], 1)],
  },
  // a tiny ViT (one windowed, one global block) at 64 px: a 4x4 token grid
  Sam2Sam1ImageEncoder: {
    make: () => new Sam1ImageEncoder(tinySam1),
    inputs: () => [rand([1, 64, 64, 3], 1)],
  },
  Sam2ImageEncoder: { make: () => new ImageEncoder(cfg), formula: true, inputs: () => [rand([1, 128, 128, 3], 1)] },
  // points with boxes (no padding token) and a mask prompt
  Sam2PromptEncoder: {
    make: () => new PromptEncoder(cfg),
    formula: true,
    inputs: () => [
      tf.randomUniform([2, 3, 2], 0, 128, 'float32', 1),
      tf.tensor2d(
        [
          [1, 0, 1],
          [0, 1, -1],
        ],
        undefined,
        'int32',
      ),
      tf.tensor2d([
        [10, 20, 60, 90],
        [0, 0, 127, 127],
      ]),
      rand([2, 32, 32, 1], 2),
    ],
  },
  // single-mask output takes the dynamic stability path
  Sam2MaskDecoder: {
    make: () => new MaskDecoder(cfg),
    formula: true,
    inputs: () => [
      rand([1, 8, 8, 256], 1),
      rand([1, 8, 8, 256], 2),
      rand([2, 4, 256], 3),
      rand([2, 8, 8, 256], 4),
      rand([1, 32, 32, 32], 5),
      rand([1, 16, 16, 64], 6),
    ],
    kwargs: { multimaskOutput: false },
  },
  Sam2MemoryEncoder: {
    make: () => new MemoryEncoder(cfg),
    formula: true,
    inputs: () => [rand([1, 8, 8, 256], 1), rand([1, 128, 128, 1], 2)],
  },
  Sam2MemoryAttentionLayer: {
    make: () => new MemoryAttentionLayer('memory_attention.layers.0', 256, 64),
    formula: true,
    inputs: () => [rand([64, 256], 1), rand([256, 132], 2), rand([132, 64], 3)],
  },
  // two spatial memories of the 8x8 grid and 4 object-pointer tokens
  Sam2MemoryAttention: {
    make: () => new MemoryAttention(cfg),
    formula: true,
    inputs: () => [rand([64, 256], 1), rand([64, 256], 2), rand([132, 64], 3), rand([132, 64], 4)],
    kwargs: { numObjPtrTokens: 4 },
  },
  // one present object, one absent (no_obj_ptr)
  Sam2TrackingParams: {
    make: () => new TrackingParams(cfg),
    formula: true,
    inputs: () => [rand([2, 256], 1), tf.tensor2d([[2], [-3]])],
  },
};

/** Random weights for every parameter of `layer` (same order as paramKeys). */
function randomWeights(layer: Sam2Layer): Weights {
  const vars = layer.nonTrainableWeights;
  return new Weights(
    layer
      .paramKeys()
      .map((k, i) => [k, tf.tidy(() => tf.mul(rand(vars[i].shape as number[], 100 + i), 0.3))] as [string, tf.Tensor]),
  );
}

/** Actual shapes match the predicted ones, null matching any size. */
function expectShapes(actual: tf.Tensor[], predicted: Shape[], what: string): void {
  expect(actual.length, `${what}: number of outputs`).to.equal(predicted.length);
  actual.forEach((t, i) => {
    const p = predicted[i];
    const ok = p.length === t.shape.length && p.every((d, j) => d === null || d === t.shape[j]);
    expect(ok, `${what}: output ${i} has shape [${t.shape}], computeOutputShape said [${p}]`).to.equal(true);
  });
}

const one = (xs: tf.Tensor[]) => (xs.length === 1 ? xs[0] : xs);

describe('custom tf.layers: config round trip', () => {
  before(() => tinyWeights()); // memoized: made before the leak checks

  it('finds every registered class', () => {
    expect(registered.length, 'Sam2Layer classes in the registry vs registerClass calls in src').to.equal(
      registerCalls,
    );
    expect(registered.length).to.be.greaterThan(18);
  });

  for (const [name, [cls, fromConfig]] of registered) {
    it(`${name}: rebuilt from its JSON config gives the same output`, async () => {
      const c = cases[name];
      if (!c) throw new Error(`no test case for the registered layer ${name}: add one to "cases" in this file`);
      await expectNoLeak(name, () => {
        const original = c.make();
        const config = original.getConfig();
        const rebuilt = fromConfig(cls, JSON.parse(JSON.stringify(config)) as tf.serialization.ConfigDict) as Sam2Layer;
        expect(rebuilt).to.be.instanceOf(original.constructor);
        expect(JSON.stringify(rebuilt.getConfig())).to.equal(JSON.stringify(config));
        expect(rebuilt.paramKeys()).to.deep.equal(original.paramKeys());
        const weights = c.formula ? tinyWeights() : randomWeights(original);
        original.loadFrom(weights);
        rebuilt.loadFrom(weights);
        const inputs = c.inputs();
        const a = tensorList(original.apply(one(inputs), c.kwargs) as tf.Tensor | tf.Tensor[]);
        const b = tensorList(rebuilt.apply(one(inputs), c.kwargs) as tf.Tensor | tf.Tensor[]);
        // from the actual shapes, and with the leading size unknown as in a symbolic tf.input
        for (const lead of [undefined, null]) {
          const shapes: Shape[] = inputs.map((t) => (lead === null ? [null, ...t.shape.slice(1)] : t.shape));
          const predicted = rebuilt.computeOutputShape(shapes.length === 1 ? shapes[0] : shapes);
          expectShapes(b, shapeList(predicted as Shape | Shape[]), `${name} (leading size ${lead ?? 'known'})`);
        }
        b.forEach((t, i) => {
          const [x, y] = [a[i].dataSync(), t.dataSync()];
          expect(x.every(Number.isFinite), `${name} output ${i} finite`).to.equal(true);
          expect(
            x.some((v) => v !== 0),
            `${name} output ${i} not all zeros`,
          ).to.equal(true);
          expect(
            Buffer.compare(Buffer.from(x.buffer), Buffer.from(y.buffer)),
            `${name} output ${i} identical`,
          ).to.equal(0);
        });
        tf.dispose([...a, ...b, ...inputs]);
        original.disposeAll();
        rebuilt.disposeAll();
        if (!c.formula) weights.dispose();
      });
    });
  }

  it('TrackingParams.call makes the object pointer as the tracker does', async () => {
    const params = new TrackingParams(cfg);
    params.loadFrom(tinyWeights());
    await expectNoLeak('TrackingParams.call', () => {
      const token = rand([2, 256], 1);
      const score = tf.tensor2d([[2], [-3]]); // present, absent
      const out = params.apply([token, score]) as tf.Tensor;
      const projected = tf.tidy(() => params.objPtrProj.forward(tf.slice(token, [0, 0], [1, -1])));
      expect(Array.from(out.dataSync().slice(0, 256))).to.deep.equal(Array.from(projected.dataSync()));
      expect(Array.from(out.dataSync().slice(256))).to.deep.equal(Array.from(params.noObjPtr.read().dataSync()));
      tf.dispose([token, score, out, projected]);
    });
    params.disposeAll();
  });

  it('every test case names a registered class', () => {
    const names = registered.map(([n]) => n);
    expect(Object.keys(cases).filter((n) => !names.includes(n))).to.deep.equal([]);
  });

  it('rejects a config without constructor arguments', () => {
    expect(() => Linear.fromConfig(Linear, { name: 'x' })).to.throw(/no "args" array/);
  });
});

describe('ImageEncoder as a tf.LayersModel', () => {
  it('wraps with tf.input -> apply -> tf.model: summary shows the output shapes and parameter count, predict matches', async () => {
    const enc = new ImageEncoder(cfg);
    enc.loadFrom(tinyWeights());
    const input = tf.input({ shape: [128, 128, 3] });
    const model = tf.model({ inputs: input, outputs: enc.apply(input) as tf.SymbolicTensor[] });
    const lines: string[] = [];
    model.summary(240, undefined, (line: string) => lines.push(line));
    const text = lines.join('\n');
    expect(text).to.contain('(Sam2ImageEncoder)');
    expect(text).to.contain('[[null,8,8,256],[null,32,32,32],[null,16,16,64]]');
    const params = enc.paramKeys().reduce((n, k) => n + tinyWeights().get(k).size, 0);
    expect(params).to.be.greaterThan(25e6); // the whole tree: Hiera-T trunk, neck, conv_s0/s1
    expect(text).to.contain(`Total params: ${params}`);
    expect(model.countParams()).to.equal(params);
    await expectNoLeak('LayersModel.predict', () => {
      const x = tf.randomUniform([1, 128, 128, 3], -2, 2, 'float32', 7) as tf.Tensor4D;
      const out = model.predict(x) as tf.Tensor[];
      const { imageEmbed, highResFeats } = enc.imageFeatures(x);
      [imageEmbed, ...highResFeats].forEach((t, i) =>
        expect(Array.from(out[i].dataSync())).to.deep.equal(Array.from(t.dataSync())),
      );
      tf.dispose([x, ...out, imageEmbed, ...highResFeats]);
    });
    enc.disposeAll();
  });

  it('comes back from model.toJSON() through tf.models.modelFromJSON and predicts the same after loading weights', async () => {
    const enc = new ImageEncoder(cfg);
    const input = tf.input({ shape: [128, 128, 3] });
    const model = tf.model({ inputs: input, outputs: enc.apply(input) as tf.SymbolicTensor[] });
    // the Keras-format JSON (snake_case keys) that tf.io saves
    const back = await tf.models.modelFromJSON({ modelTopology: JSON.parse(model.toJSON() as string) });
    const restored = back.layers[1];
    expect(restored).to.be.instanceOf(ImageEncoder);
    expect(JSON.stringify(restored.getConfig())).to.equal(JSON.stringify(enc.getConfig()));
    enc.loadFrom(tinyWeights());
    (restored as ImageEncoder).loadFrom(tinyWeights());
    await expectNoLeak('restored LayersModel.predict', () => {
      const x = tf.randomUniform([1, 128, 128, 3], -2, 2, 'float32', 8) as tf.Tensor4D;
      const [a, b] = [model.predict(x) as tf.Tensor[], back.predict(x) as tf.Tensor[]];
      a.forEach((t, i) => expect(Array.from(b[i].dataSync())).to.deep.equal(Array.from(t.dataSync())));
      tf.dispose([x, ...a, ...b]);
    });
    enc.disposeAll();
    (restored as ImageEncoder).disposeAll();
  });
});
