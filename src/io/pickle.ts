/**
 * A restricted unpickler for the subset of the pickle protocol that torch.save writes. Nothing
 * is executed: GLOBAL/STACK_GLOBAL resolve only to an allow-list of torch's tensor and
 * container constructors (as torch.load(weights_only=True) does); any other global is an error.
 */
import { Sam2Error } from '../errors';

/** A reference to one storage of the archive (`data/<key>`), from torch's persistent ids. */
export interface StorageRef {
  kind: 'storage';
  dtype: string;
  key: string;
  numel: number;
}

/** A tensor view on a storage, as torch._utils._rebuild_tensor_v2 describes it. */
export interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  offset: number;
  shape: number[];
  stride: number[];
}

interface GlobalRef {
  kind: 'global';
  name: string;
}

const STORAGE_DTYPES: Record<string, string> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

/** Globals a torch checkpoint may reference; everything else is refused. */
const ALLOWED = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_parameter',
  'torch.Size',
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
]);

const MARK = Symbol('mark');

function asInt(v: unknown): number {
  return typeof v === 'bigint' ? Number(v) : (v as number);
}

function call(fn: GlobalRef, args: unknown[]): unknown {
  switch (fn.name) {
    case 'collections.OrderedDict':
      return new Map();
    case 'torch.Size':
      return (args[0] as unknown[]).map(asInt);
    case 'torch._utils._rebuild_tensor':
    case 'torch._utils._rebuild_tensor_v2': {
      const [storage, offset, shape, stride] = args as [StorageRef, unknown, unknown[], unknown[]];
      if (!storage || storage.kind !== 'storage')
        throw new Sam2Error('CHECKPOINT', 'Tensor without a storage in the pickle.');
      return {
        kind: 'tensor',
        storage,
        offset: asInt(offset),
        shape: shape.map(asInt),
        stride: stride.map(asInt),
      } as TensorRef;
    }
    case 'torch._utils._rebuild_parameter':
      return args[0];
    default:
      throw new Sam2Error('UNSAFE_PICKLE', `Checkpoint pickle calls ${fn.name}, which is not allowed.`);
  }
}

/** Unpickles `data` (a torch data.pkl) into plain values: Map, arrays, numbers, TensorRef... */
export function unpickle(data: Buffer, what = 'checkpoint'): unknown {
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const need = (n: number) => {
    if (p + n > data.length)
      throw new Sam2Error('CHECKPOINT', `${what}: pickle ends unexpectedly (truncated or corrupt).`);
  };
  const u8 = () => (need(1), data[p++]);
  const u16 = () => (need(2), (p += 2), data.readUInt16LE(p - 2));
  const u32 = () => (need(4), (p += 4), data.readUInt32LE(p - 4));
  const str = (n: number, enc: BufferEncoding) => (need(n), (p += n), data.toString(enc, p - n, p));
  const line = () => {
    const end = data.indexOf(0x0a, p);
    if (end < 0) throw new Sam2Error('CHECKPOINT', `${what}: bad pickle text line.`);
    const s = data.toString('latin1', p, end);
    p = end + 1;
    return s;
  };
  const popMark = () => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) throw new Sam2Error('CHECKPOINT', `${what}: pickle MARK missing.`);
    const items = stack.splice(i);
    items.shift();
    return items;
  };
  const global = (module: string, name: string): GlobalRef => {
    const full = `${module}.${name}`;
    if (!ALLOWED.has(full)) {
      throw new Sam2Error(
        'UNSAFE_PICKLE',
        `Checkpoint pickle references "${full}", which is not a tensor or container type; refusing to load it (only torch tensors and containers are accepted, as torch.load(weights_only=True)).`,
      );
    }
    return { kind: 'global', name: full };
  };
  const setItems = (target: unknown, items: unknown[]) => {
    for (let i = 0; i < items.length; i += 2) {
      if (target instanceof Map) target.set(items[i], items[i + 1]);
      else (target as Record<string, unknown>)[items[i] as string] = items[i + 1];
    }
  };
  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80:
        u8();
        break; // PROTO
      case 0x95:
        need(8);
        p += 8;
        break; // FRAME
      case 0x2e:
        return stack.pop(); // STOP
      case 0x28:
        stack.push(MARK);
        break;
      case 0x7d:
        stack.push(new Map());
        break; // EMPTY_DICT
      case 0x64: {
        const m = new Map();
        setItems(m, popMark());
        stack.push(m);
        break;
      } // DICT
      case 0x5d:
        stack.push([]);
        break; // EMPTY_LIST
      case 0x6c:
        stack.push(popMark());
        break; // LIST
      case 0x29:
        stack.push([]);
        break; // EMPTY_TUPLE
      case 0x74:
        stack.push(popMark());
        break; // TUPLE
      case 0x85:
        stack.push([stack.pop()]);
        break;
      case 0x86: {
        const b = stack.pop();
        const a = stack.pop();
        stack.push([a, b]);
        break;
      }
      case 0x87: {
        const c = stack.pop();
        const b = stack.pop();
        const a = stack.pop();
        stack.push([a, b, c]);
        break;
      }
      case 0x71:
        memo.set(u8(), stack[stack.length - 1]);
        break; // BINPUT
      case 0x72:
        memo.set(u32(), stack[stack.length - 1]);
        break; // LONG_BINPUT
      case 0x94:
        memo.set(memo.size, stack[stack.length - 1]);
        break; // MEMOIZE
      case 0x68:
        stack.push(memo.get(u8()));
        break; // BINGET
      case 0x6a:
        stack.push(memo.get(u32()));
        break; // LONG_BINGET
      case 0x58:
        stack.push(str(u32(), 'utf8'));
        break; // BINUNICODE
      case 0x8c:
        stack.push(str(u8(), 'utf8'));
        break; // SHORT_BINUNICODE
      case 0x8d: {
        need(8);
        const n = Number(data.readBigUInt64LE(p));
        p += 8;
        stack.push(str(n, 'utf8'));
        break;
      }
      case 0x54:
        stack.push(str(u32(), 'latin1'));
        break; // BINSTRING
      case 0x55:
        stack.push(str(u8(), 'latin1'));
        break; // SHORT_BINSTRING
      case 0x42: {
        const n = u32();
        need(n);
        stack.push(data.subarray(p, (p += n)));
        break;
      } // BINBYTES
      case 0x43: {
        const n = u8();
        need(n);
        stack.push(data.subarray(p, (p += n)));
        break;
      } // SHORT_BINBYTES
      case 0x63: {
        const module = line();
        stack.push(global(module, line()));
        break;
      } // GLOBAL
      case 0x93: {
        const name = stack.pop() as string;
        stack.push(global(stack.pop() as string, name));
        break;
      }
      case 0x51: {
        // BINPERSID: ('storage', storage_type, key, location, numel)
        const pid = stack.pop() as unknown[];
        if (!Array.isArray(pid) || pid[0] !== 'storage')
          throw new Sam2Error('CHECKPOINT', `${what}: unknown persistent id.`);
        const type = (pid[1] as GlobalRef).name.replace(/^torch\./, '');
        stack.push({
          kind: 'storage',
          dtype: STORAGE_DTYPES[type],
          key: String(pid[2]),
          numel: asInt(pid[4]),
        } as StorageRef);
        break;
      }
      case 0x52: {
        const args = stack.pop() as unknown[];
        const fn = stack.pop() as GlobalRef;
        stack.push(call(fn, args));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = stack.pop() as unknown[];
        stack.push(call(stack.pop() as GlobalRef, args));
        break;
      }
      case 0x62:
        stack.pop();
        break; // BUILD: instance state (e.g. a state dict's _metadata) is not needed
      case 0x4a:
        need(4);
        stack.push(data.readInt32LE(p));
        p += 4;
        break; // BININT
      case 0x4b:
        stack.push(u8());
        break; // BININT1
      case 0x4d:
        stack.push(u16());
        break; // BININT2
      case 0x8a:
      case 0x8b: {
        // LONG1 / LONG4: little-endian two's complement
        const n = op === 0x8a ? u8() : u32();
        need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[p + i]);
        if (n > 0 && data[p + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        p += n;
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47:
        need(8);
        stack.push(data.readDoubleBE(p));
        p += 8;
        break; // BINFLOAT
      case 0x88:
        stack.push(true);
        break;
      case 0x89:
        stack.push(false);
        break;
      case 0x4e:
        stack.push(null);
        break;
      case 0x73: {
        const v = stack.pop();
        const k = stack.pop();
        setItems(stack[stack.length - 1], [k, v]);
        break;
      }
      case 0x75: {
        const items = popMark();
        setItems(stack[stack.length - 1], items);
        break;
      }
      case 0x61: {
        const v = stack.pop();
        (stack[stack.length - 1] as unknown[]).push(v);
        break;
      }
      case 0x65: {
        const items = popMark();
        (stack[stack.length - 1] as unknown[]).push(...items);
        break;
      }
      case 0x30:
        stack.pop();
        break; // POP
      case 0x31:
        popMark();
        break; // POP_MARK
      case 0x32:
        stack.push(stack[stack.length - 1]);
        break; // DUP
      default:
        throw new Sam2Error(
          'CHECKPOINT',
          `${what}: unsupported pickle opcode 0x${op.toString(16)} at byte ${p - 1} (not a torch.save checkpoint?).`,
        );
    }
  }
}
