/**
 * Runs async calls one at a time, in the order they were made. The predictors hold one image
 * (or one video state) and replace it on setImage: Node apps call them from concurrent
 * requests, so a predict issued after a setImage must wait for it, and two setImage calls must
 * not interleave (the loser's features would leak).
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;

  /** Calls `fn` after every call queued before it has settled; a failure does not block later calls. */
  run<T>(fn: () => Promise<T> | T): Promise<T> {
    this.pending++;
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => this.pending--,
      () => this.pending--,
    );
    return result;
  }

  /** True while a queued call has not settled. */
  get busy(): boolean {
    return this.pending > 0;
  }
}
