/** Shared test helpers: tensor-leak checks and re-exports of the fidelity harness. */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { Sam2Error, type Sam2ErrorCode } from '../src/errors';

export * from '../src/testing/compare';
export * from '../src/testing/fixtures';
export * from '../src/testing/npy';
export * from '../src/testing/formula';

/** Runs `fn` and asserts tf.memory().numTensors is back to where it started. */
export async function expectNoLeak<T>(what: string, fn: () => Promise<T> | T): Promise<T> {
  const before = tf.memory().numTensors;
  const out = await fn();
  const after = tf.memory().numTensors;
  expect(after, `${what} leaked ${after - before} tensors`).to.equal(before);
  return out;
}

/**
 * Frees a memoized test value: a layer (disposeAll), a tensor, model or Weights (dispose), or arrays,
 * maps and plain objects of them.
 */
export function disposeDeep(value: unknown): void {
  if (value == null || typeof value !== 'object') return;
  const v = value as { dispose?: () => void; disposeAll?: () => void };
  if (typeof v.disposeAll === 'function') return v.disposeAll(); // our layers: every weight and cache
  if (typeof v.dispose === 'function') return v.dispose(); // tensors, models, Weights
  const items = value instanceof Map ? [...value.values()] : Array.isArray(value) ? value : Object.values(value);
  for (const item of items) disposeDeep(item);
}

/**
 * Asserts that `action` (a promise, or a function called now) fails with a Sam2Error of `code`
 * whose message matches `pattern`; returns the error for further checks.
 */
export async function expectSam2Error(
  action: Promise<unknown> | (() => unknown),
  code: Sam2ErrorCode,
  pattern: RegExp,
): Promise<Sam2Error> {
  let error: unknown;
  try {
    await (typeof action === 'function' ? action() : action);
  } catch (e) {
    error = e;
  }
  expect(error, 'expected a Sam2Error, but the call succeeded').to.not.equal(undefined);
  expect(error, String(error)).to.be.instanceOf(Sam2Error);
  expect((error as Sam2Error).code, String(error)).to.equal(code);
  expect((error as Error).message).to.match(pattern);
  return error as Sam2Error;
}
