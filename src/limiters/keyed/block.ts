/**
 * The block policy of a keyed limiter: a key refused `afterRefusals` times in a row (as
 * 'limited') sits out `durationMs`, refused as 'blocked'. An admission, or a bucket refilling to
 * the level of a missing key, ends the streak.
 *
 * Per slot one number, the block word: <= 0 is minus the refusal streak; > 0 is the block's end
 * minus the epoch (so a word is never 0 while blocked).
 */

export interface BlockOptions {
  /** Refusals in a row that start a block: an integer >= 1. */
  afterRefusals: number;
  /** How long a block lasts, in ms: a finite number > 0. */
  durationMs: number;
}

export class BlockPolicy {
  readonly afterRefusals: number;
  readonly durationMs: number;
  readonly #epoch: number;

  constructor(options: BlockOptions, now: number) {
    this.afterRefusals = options.afterRefusals;
    this.durationMs = options.durationMs;
    this.#epoch = now - 1;
  }

  /** Ms left in the block held by `word` at `now`; <= 0 when it is not (or no longer) blocked. */
  remainingMs(word: number, now: number): number {
    return word > 0 ? word - (now - this.#epoch) : 0;
  }

  /**
   * The word after one more 'limited' refusal at `now`: a longer streak, or a block when the
   * streak reaches `afterRefusals`. Answers the new word; a positive one means a block started.
   */
  afterRefusal(word: number, now: number): number {
    const streak = 1 - word;
    return streak >= this.afterRefusals ? now - this.#epoch + this.durationMs : -streak;
  }
}
