/**
 * The slot table of a keyed limiter: which key holds which slot, and the per-slot typed arrays.
 *
 * A `Map<string, number>` maps a key to a slot index (a small integer stored inline in the Map
 * entry). Per slot: tokens and last-settled time side by side in one Float64Array (one cache line
 * per key), a CLOCK reference bit (Uint8Array), and only when asked for, a block word
 * (Float64Array) and a tier index (Uint16Array, widened to Uint32Array past 65,535 tiers). The
 * arrays grow by doubling up to `maxKeys`; freed slots are recycled. No per-key object or timer.
 *
 * Eviction is CLOCK (second chance) over the Map's insertion order: a hand walks the keys; a key
 * used since the hand last passed loses its reference bit and is skipped, the first key without
 * one is evicted. The owner may also declare a referenced slot droppable (a bucket that decides
 * exactly like a missing one), which is evicted at once, and may pin a slot (waiters depend on it),
 * which the hand passes over while it can.
 */

const INITIAL_SLOTS = 1024;

/** Asked of a referenced slot during eviction: may it go now (its state equals a missing key's)? */
export type DropCheck = (slot: number, now: number) => boolean;

export interface SlotTableOptions {
  readonly maxKeys: number;
  /** Allocate the block-word column. */
  readonly block: boolean;
  /** Allocate the tier-index column. */
  readonly tiers: boolean;
  /** Numbers per slot in `state`: 2 (tokens, last-settled time) unless the owner keeps more. @default 2 */
  readonly stride?: number;
}

export class SlotTable {
  readonly maxKeys: number;
  readonly map = new Map<string, number>();
  /** Tokens at [stride·slot], last-settled time at [stride·slot + 1], then the owner's own numbers. */
  state: Float64Array;
  /** Numbers per slot in `state`. */
  readonly stride: number;
  /** CLOCK reference bits. */
  ref: Uint8Array;
  /** Block words (see BlockPolicy), only with `block`. */
  blk: Float64Array | undefined;
  /**
   * Only with `block`: the streak word the key's latest charge ended (<= 0, a streak past 2^31 - 1
   * held as that), so that a refund of that charge can give the streak back (see KeyedEngine's
   * refunds). 4 bytes a key.
   */
  ended: Int32Array | undefined;
  /** Tier indices, only with `tiers`. */
  tierOf: Uint16Array | Uint32Array | undefined;
  #capacity: number;
  #used = 0;
  readonly #free: number[] = [];
  /**
   * The CLOCK hand. Created only when an eviction needs it and dropped whenever the Map may grow:
   * a live Map iterator keeps every table the Map has outgrown alive (about 29 B per key).
   */
  #hand: Iterator<string> | undefined;
  /** The key the hand points at, read from the iterator but not yet examined. */
  #handKey: string | undefined;
  /** Slots the hand should pass over (keys with waiters), with their pin counts. */
  #pinned: Map<number, number> | undefined;

  constructor(options: SlotTableOptions) {
    this.maxKeys = options.maxKeys;
    this.#capacity = Math.min(INITIAL_SLOTS, this.maxKeys);
    this.stride = options.stride ?? 2;
    this.state = new Float64Array(this.stride * this.#capacity);
    this.ref = new Uint8Array(this.#capacity);
    if (options.block) {
      this.blk = new Float64Array(this.#capacity);
      this.ended = new Int32Array(this.#capacity);
    }
    if (options.tiers) this.tierOf = new Uint16Array(this.#capacity);
  }

  get size(): number {
    return this.map.size;
  }

  /**
   * A slot for a new key, evicting one when the table is full. The slot's tokens are the caller's
   * to write; its last-settled time is `now`, its block word 0 and its tier `tier`. An evicted
   * key's slot is reused: the owner sees it gone from `map`.
   */
  create(key: string, now: number, tier: number, canDrop: DropCheck): number {
    let s: number;
    const evicting = this.map.size >= this.maxKeys;
    if (evicting) s = this.#evict(now, canDrop);
    else {
      this.#hand = undefined;
      this.#handKey = undefined;
      if (this.#free.length > 0) s = this.#free.pop()!;
      else {
        if (this.#used === this.#capacity) this.#grow();
        s = this.#used++;
      }
    }
    this.map.set(key, s);
    // Step the hand now: if that insertion rehashed the Map, the iterator moves to the new table at
    // once instead of keeping the old one alive until the next eviction.
    if (evicting) this.#handKey = this.#advance();
    this.state[this.stride * s + 1] = now;
    this.ref[s] = 0; // a new key earns its second chance by being used again (scan resistance)
    if (this.blk !== undefined) {
      this.blk[s] = 0;
      this.ended![s] = 0;
    }
    if (this.tierOf !== undefined) this.tierOf[s] = tier;
    return s;
  }

  /** Forgets `key`; answers its slot, or -1 when it had none. */
  delete(key: string): number {
    const s = this.map.get(key);
    if (s === undefined) return -1;
    this.map.delete(key);
    this.#free.push(s);
    this.#pinned?.delete(s);
    return s;
  }

  /** Forgets every key. */
  clear(): void {
    this.map.clear();
    this.#used = 0;
    this.#free.length = 0;
    this.#hand = undefined;
    this.#handKey = undefined;
    this.#pinned = undefined;
  }

  /** Keeps the hand off `slot` (while it can: see `#evict`) until as many `unpin`s. */
  pin(slot: number): void {
    if (this.#pinned === undefined) this.#pinned = new Map();
    this.#pinned.set(slot, (this.#pinned.get(slot) ?? 0) + 1);
  }

  /** Whether `slot` is pinned (a waiter depends on it). */
  isPinned(slot: number): boolean {
    return this.#pinned?.has(slot) === true;
  }

  unpin(slot: number): void {
    const pinned = this.#pinned;
    const n = pinned?.get(slot);
    if (n === undefined) return;
    if (n > 1) pinned!.set(slot, n - 1);
    else pinned!.delete(slot);
  }

  /** Widens the tier column when tier indices outgrow 16 bits. */
  widenTiers(): void {
    if (this.tierOf instanceof Uint16Array) this.tierOf = Uint32Array.from(this.tierOf);
  }

  /**
   * CLOCK: the first key that is droppable or unreferenced. Pinned keys are passed over for two
   * full turns of the hand; a table where every key is pinned then gives up its next key anyway
   * (the owner is told through the slot's key being gone).
   */
  #evict(now: number, canDrop: DropCheck): number {
    const pinned = this.#pinned;
    let patience = pinned !== undefined && pinned.size > 0 ? 2 * this.map.size + 1 : Infinity;
    for (;;) {
      const key = this.#handKey ?? this.#advance();
      this.#handKey = undefined;
      const s = this.map.get(key);
      if (s === undefined) continue; // deleted since the hand reached it
      if (pinned?.has(s) && --patience > 0) continue;
      let evict = this.ref[s] === 0;
      if (!evict) {
        if (canDrop(s, now)) evict = true;
        else this.ref[s] = 0;
      }
      if (evict) {
        this.map.delete(key);
        pinned?.delete(s);
        return s;
      }
    }
  }

  /** Moves the hand one key on, wrapping around at the end. */
  #advance(): string {
    if (this.#hand === undefined) this.#hand = this.map.keys();
    let n = this.#hand.next();
    if (n.done === true) {
      this.#hand = this.map.keys();
      n = this.#hand.next();
    }
    return n.value as string;
  }

  #grow(): void {
    const cap = Math.min(this.#capacity * 2, this.maxKeys);
    const state = new Float64Array(this.stride * cap);
    state.set(this.state);
    this.state = state;
    const ref = new Uint8Array(cap);
    ref.set(this.ref);
    this.ref = ref;
    if (this.blk !== undefined) {
      const blk = new Float64Array(cap);
      blk.set(this.blk);
      this.blk = blk;
      const ended = new Int32Array(cap);
      ended.set(this.ended!);
      this.ended = ended;
    }
    const t = this.tierOf;
    if (t !== undefined) {
      const wider = t instanceof Uint16Array ? new Uint16Array(cap) : new Uint32Array(cap);
      wider.set(t);
      this.tierOf = wider;
    }
    this.#capacity = cap;
  }
}
