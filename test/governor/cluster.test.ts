import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import {
  FLEET_FACTOR_MESSAGE,
  fleetFactor,
  isFleetFactorMessage,
  minFactor,
  shareFleetFactor,
} from '../../src/governor/cluster.js';
import { Governor } from '../../src/governor/governor.js';
import { ManualFactor } from '../../src/limiters/factor.js';
import { scripted } from './helpers.js';

class FakeWorker {
  readonly sent: unknown[] = [];
  connected = true;
  /** Delivers to a worker-side `process` stand-in, as IPC would. */
  constructor(readonly proc?: EventEmitter) {}
  send(message: unknown): boolean {
    if (!this.connected) throw new Error('channel closed');
    this.sent.push(message);
    this.proc?.emit('message', structuredClone(message));
    return true;
  }
  isConnected(): boolean {
    return this.connected;
  }
}

class FakeCluster extends EventEmitter {
  workers: Record<string, FakeWorker | undefined> = {};
}

describe('primary: shareFleetFactor', () => {
  it('sends the fleet factor to every connected worker on change, as a heartbeat and to new workers', () => {
    const clock = new ManualClock();
    const cluster = new FakeCluster();
    const a = new FakeWorker();
    const b = new FakeWorker();
    cluster.workers = { 1: a, 2: b, 3: undefined };
    let load = 0;
    const sharer = shareFleetFactor({
      cluster,
      clock,
      signals: [scripted('cpu-tree', () => load, { target: 0.75, limit: 0.95 })],
      governor: { warmupMs: 0 },
      heartbeatMs: 5000,
    });
    sharer.start();
    sharer.start();
    // The first heartbeat goes out at start.
    expect(a.sent).toEqual([{ type: FLEET_FACTOR_MESSAGE, factor: 1 }]);
    load = 1;
    clock.advance(4000);
    const cut = sharer.governor.factor;
    expect(cut).toBeLessThan(1);
    const last = a.sent.at(-1) as { factor: number };
    expect(last).toEqual({ type: FLEET_FACTOR_MESSAGE, factor: cut });
    expect(b.sent).toEqual(a.sent);
    // A worker that came online gets the current factor at once.
    const c = new FakeWorker();
    cluster.workers[4] = c;
    cluster.emit('online', c);
    expect(c.sent).toEqual([{ type: FLEET_FACTOR_MESSAGE, factor: cut }]);
    // A disconnected worker is skipped, and one that throws on send does not stop the others.
    b.connected = false;
    const d = new FakeWorker();
    d.send = () => {
      throw new Error('EPIPE');
    };
    cluster.workers[5] = d;
    const n = sharer.broadcast();
    expect(n).toBe(2);
    sharer.stop();
    sharer.stop();
    expect(clock.pendingTimers).toBe(0);
    expect(cluster.listenerCount('online')).toBe(0);
    // stop() releases the workers at once (factor 1), then sends nothing more.
    expect(a.sent.at(-1)).toEqual({ type: FLEET_FACTOR_MESSAGE, factor: 1 });
    const count = a.sent.length;
    clock.advance(20_000);
    expect(a.sent.length).toBe(count);
  });

  it('rejects a cluster that is not one, and unknown options', () => {
    expect(() => shareFleetFactor({ cluster: {} as never })).toThrow(/`cluster`/);
    expect(() => shareFleetFactor({ heartbeat: 1 } as never)).toThrow(/shareFleetFactor\.heartbeat/);
  });
});

describe('worker: fleetFactor and minFactor', () => {
  it('takes the factor from valid messages only, and notifies subscribers', () => {
    const clock = new ManualClock();
    const proc = new EventEmitter();
    const fleet = fleetFactor({ process: proc, clock });
    const seen: number[] = [];
    fleet.subscribe((f) => seen.push(f));
    expect(fleet.factor).toBe(1);
    proc.emit('message', { type: FLEET_FACTOR_MESSAGE, factor: 0.4 });
    proc.emit('message', { type: 'other', factor: 0.1 });
    proc.emit('message', { type: FLEET_FACTOR_MESSAGE, factor: 7 });
    proc.emit('message', 'hello');
    expect(fleet.factor).toBe(0.4);
    expect(fleet.factorFor('sheddable')).toBeCloseTo(0.16, 12);
    expect(seen).toEqual([0.4]);
    expect(isFleetFactorMessage({ type: FLEET_FACTOR_MESSAGE, factor: Number.NaN })).toBe(false);
    fleet.close();
    expect(proc.listenerCount('message')).toBe(0);
    expect(fleet.factor).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('drops a stale fleet factor (fail open) after staleAfterMs without a message', () => {
    const clock = new ManualClock();
    const proc = new EventEmitter();
    const fleet = fleetFactor({ process: proc, clock, staleAfterMs: 15_000 });
    proc.emit('message', { type: FLEET_FACTOR_MESSAGE, factor: 0.3 });
    clock.advance(10_000);
    proc.emit('message', { type: FLEET_FACTOR_MESSAGE, factor: 0.3 }); // a heartbeat renews it
    clock.advance(14_999);
    expect(fleet.factor).toBe(0.3);
    clock.advance(1);
    expect(fleet.factor).toBe(1);
    fleet.close();
  });

  it('minFactor: the lower of the worker governor and the fleet factor applies', () => {
    const own = new ManualFactor(0.8);
    const fleet = new ManualFactor(1);
    const combined = minFactor(own, fleet);
    const seen: number[] = [];
    combined.subscribe((f) => seen.push(f));
    expect(combined.factor).toBe(0.8);
    fleet.set(0.5);
    expect(combined.factor).toBe(0.5);
    expect(combined.factorFor('critical')).toBeCloseTo(Math.sqrt(0.5), 12);
    own.set(0.6); // still above the fleet's 0.5: no change
    own.set(0.3);
    fleet.set(1);
    expect(seen).toEqual([0.5, 0.3]);
    combined.close();
    own.set(0.1);
    expect(seen).toEqual([0.5, 0.3]);
    expect(() => minFactor()).toThrow(/`sources`/);
  });

  it('end to end over fake IPC: primary governor → worker fleet factor → min with the worker governor', () => {
    const clock = new ManualClock();
    const cluster = new FakeCluster();
    const workerProcess = new EventEmitter();
    cluster.workers = { 1: new FakeWorker(workerProcess) };
    let treeCpu = 0.5;
    const sharer = shareFleetFactor({
      cluster,
      clock,
      signals: [scripted('cpu-tree', () => treeCpu, { target: 0.75, limit: 0.95 })],
      governor: { warmupMs: 0 },
    });
    const fleet = fleetFactor({ process: workerProcess, clock });
    const own = new Governor({ signals: [scripted('event-loop-delay', () => 0)], clock, warmupMs: 0 });
    const limiterFactor = minFactor(own, fleet);
    own.start();
    sharer.start();
    clock.advance(5000);
    expect(limiterFactor.factor).toBe(1);
    treeCpu = 1; // the machine is saturated, the worker's own loop is fine
    clock.advance(5000);
    expect(own.factor).toBe(1);
    expect(fleet.factor).toBe(sharer.governor.factor);
    expect(limiterFactor.factor).toBe(sharer.governor.factor);
    expect(limiterFactor.factor).toBeLessThan(0.7);
    sharer.stop();
    own.stop();
    fleet.close();
    limiterFactor.close();
    expect(clock.pendingTimers).toBe(0);
  });
});
