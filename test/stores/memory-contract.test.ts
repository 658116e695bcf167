// The store contract against the in-memory store, on a ManualClock (exact time, no waiting).
import { describe, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { storeContract } from '../../src/testing/index.js';

let clock = new ManualClock();
storeContract({
  name: 'MemoryStore',
  describe,
  it,
  createStore: () => {
    clock = new ManualClock();
    return new MemoryStore({ clock });
  },
  advance: (ms) => clock.advance(ms),
});
