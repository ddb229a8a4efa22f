/** Machine-readable category of a {@link Sam2Error}. */
export type Sam2ErrorCode =
  | 'BACKEND' // no usable tf.js backend, or an unknown backend name
  | 'CHECKPOINT' // unreadable, corrupt, truncated or unsupported checkpoint file
  | 'UNSAFE_PICKLE' // a checkpoint asks to run code we do not allow
  | 'WEIGHTS' // weights missing, unexpected or of the wrong shape for the model config
  | 'CONFIG' // unknown model name or invalid configuration
  | 'INPUT' // a bad argument from the caller (shape, range, type)
  | 'IMAGE' // image bytes that cannot be decoded
  | 'STATE' // a call made in the wrong order (predict before setImage, reset state)
  | 'NETWORK' // a download that cannot proceed
  | 'MEMORY'; // the backend ran out of memory (the 4 GB wasm heap is full)

/**
 * The one error type sam2-tfjs throws on bad input or bad files. `code` tells the category;
 * the message says what was wrong and what to do.
 */
export class Sam2Error extends Error {
  readonly code: Sam2ErrorCode;
  constructor(code: Sam2ErrorCode, message: string) {
    super(message);
    this.name = 'Sam2Error';
    this.code = code;
  }
}

/** Throws an INPUT error unless `cond` holds. */
export function check(cond: unknown, message: string, code: Sam2ErrorCode = 'INPUT'): asserts cond {
  if (!cond) throw new Sam2Error(code, message);
}
