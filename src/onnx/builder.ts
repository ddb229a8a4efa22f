/**
 * A small ONNX graph builder: values are names, initializers come from host arrays (our layers'
 * own weights), nodes are appended in order. The file format is written by onnx-proto (the
 * official onnx.proto compiled with protobufjs), never by hand.
 */
import { onnx } from 'onnx-proto';
import { Sam2Error } from '../errors';

/** Opset of every graph we emit: 17 has LayerNormalization. */
export const OPSET = 17;

export type Dim = number | string;
export type ElemType = 'float32' | 'int64' | 'bool';

const ELEM: Record<ElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  bool: onnx.TensorProto.DataType.BOOL,
};

export type AttrValue = number | number[] | string | { float: number } | { floats: number[] };

/** Description of a graph input or output, also written to the export's JSON. */
export interface ValueInfo {
  name: string;
  type: ElemType;
  shape: Dim[];
  /** What the value is, for users of the exported files. */
  doc?: string;
}

export class OnnxBuilder {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly initializers: onnx.ITensorProto[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  private counter = 0;
  private prefix: string[] = [];
  private readonly constCache = new Map<string, string>();

  constructor(readonly graphName: string) {}

  /** A fresh value name under the current scope. */
  fresh(hint: string): string {
    return `${[...this.prefix, hint].join('/')}_${this.counter++}`;
  }

  /** Runs `fn` with names prefixed by `name` (readable graphs in Netron). */
  scope<T>(name: string, fn: () => T): T {
    this.prefix.push(name);
    try {
      return fn();
    } finally {
      this.prefix.pop();
    }
  }

  input(name: string, type: ElemType, shape: Dim[], doc?: string): string {
    this.inputs.push({ name, type, shape, doc });
    return name;
  }

  /** Declares `value` as graph output `name` (through an Identity when the names differ). */
  output(name: string, value: string, type: ElemType, shape: Dim[], doc?: string): void {
    if (value !== name) this.nodes.push({ opType: 'Identity', input: [value], output: [name], name: `${name}_out` });
    this.outputs.push({ name, type, shape, doc });
  }

  /** A float32 initializer from host data. */
  weight(hint: string, data: Float32Array, dims: number[]): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (n !== data.length)
      throw new Sam2Error('INPUT', `ONNX initializer ${hint}: ${data.length} values for shape [${dims}].`);
    const name = this.fresh(hint);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.initializers.push({ name, dims, dataType: ELEM.float32, rawData: bytes.slice() });
    return name;
  }

  /** An int64 constant (shapes, axes, indices), shared between uses. */
  i64(values: number[], dims: number[] = [values.length]): string {
    const key = `i64:${dims}:${values}`;
    let name = this.constCache.get(key);
    if (!name) {
      name = `const_i64_${this.counter++}`;
      const buf = new BigInt64Array(values.map((v) => BigInt(v)));
      this.initializers.push({ name, dims, dataType: ELEM.int64, rawData: new Uint8Array(buf.buffer) });
      this.constCache.set(key, name);
    }
    return name;
  }

  /** A float32 constant, shared between uses (scalars by default). */
  f32(values: number[] | number, dims?: number[]): string {
    const vals = typeof values === 'number' ? [values] : values;
    const d = dims ?? (typeof values === 'number' ? [] : [vals.length]);
    const key = `f32:${d}:${vals}`;
    let name = this.constCache.get(key);
    if (!name) {
      name = this.weight('const_f32', Float32Array.from(vals), d);
      this.constCache.set(key, name);
    }
    return name;
  }

  /** Appends a node with one output and returns its name. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, hint?: string): string {
    return this.opN(opType, inputs, 1, attrs, hint)[0];
  }

  /** Appends a node with `nOut` outputs. */
  opN(opType: string, inputs: string[], nOut: number, attrs: Record<string, AttrValue> = {}, hint?: string): string[] {
    const base = this.fresh(hint ?? opType);
    const output = nOut === 1 ? [base] : Array.from({ length: nOut }, (_, i) => `${base}:${i}`);
    this.nodes.push({
      opType,
      input: inputs,
      output,
      name: base,
      attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)),
    });
    return output;
  }

  /** The serialized ModelProto. */
  toBytes(docString = ''): Uint8Array {
    const vi = (v: ValueInfo): onnx.IValueInfoProto => ({
      name: v.name,
      docString: v.doc,
      type: {
        tensorType: {
          elemType: ELEM[v.type],
          shape: { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
        },
      },
    });
    const model: onnx.IModelProto = {
      irVersion: 8,
      producerName: 'sam2-tfjs',
      docString,
      opsetImport: [{ domain: '', version: OPSET }],
      graph: {
        name: this.graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs.map(vi),
        output: this.outputs.map(vi),
      },
    };
    return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
  }

  get nodeCount(): number {
    return this.nodes.length;
  }
}

function attr(name: string, v: AttrValue): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') return { name, type: T.INT, i: v };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.FLOATS, floats: v.floats };
}
