/** Shared test helpers: tensor-leak checks and re-exports of the fidelity harness. */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';

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
