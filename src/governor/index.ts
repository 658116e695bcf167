/**
 * The governor layer: pressure, smoothing, the controller, the Governor, and the cluster helpers.
 * `createGovernor` is the composition root that picks the default signals.
 */
import { defaultSignals } from '../signals/defaults.js';
import type { Signal } from '../signals/types.js';
import { Governor, type GovernorOptions } from './governor.js';

export {
  type ClusterLike,
  FLEET_FACTOR_MESSAGE,
  FleetFactor,
  type FleetFactorMessage,
  type FleetFactorOptions,
  type FleetFactorSharer,
  fleetFactor,
  isFleetFactorMessage,
  MinFactor,
  minFactor,
  type ProcessLike,
  type ShareFleetFactorOptions,
  shareFleetFactor,
  type WorkerLike,
} from './cluster.js';
export {
  type ControllerAction,
  type ControllerConfig,
  type ControllerInput,
  type ControllerState,
  type ControllerStep,
  controllerStep,
  type GovernorState,
  initialControllerState,
} from './controller.js';
export {
  type DecisionRecord,
  type DominantSignal,
  GOVERNOR_DEFAULTS,
  Governor,
  type GovernorEvents,
  type GovernorMode,
  type GovernorOptions,
  type GovernorSnapshot,
  type ResolvedGovernorOptions,
  resolveGovernorOptions,
  type SignalErrorEvent,
  type SignalStatus,
} from './governor.js';
export { dominantReading, MAX_PRESSURE, type PressureReading, signalPressure } from './pressure.js';
export { ewmaAlpha, TimeEwma } from './smoothing.js';

/** Options for `createGovernor`: those of `Governor`, with `signals` optional. */
export type CreateGovernorOptions = Omit<GovernorOptions, 'signals'> & {
  /** @default defaultSignals({ clock }): event-loop delay, heap and RSS memory. */
  signals?: readonly Signal[];
};

/**
 * A Governor, not yet started. Without `signals` it watches the default set (`defaultSignals`),
 * timed by the same clock as the governor.
 */
export function createGovernor(options: CreateGovernorOptions = {}): Governor {
  if (typeof options !== 'object' || options === null) {
    return new Governor(options as unknown as GovernorOptions); // throws the ConfigError
  }
  if (options.signals !== undefined) return new Governor(options as GovernorOptions);
  const clock = options.clock;
  const signals = defaultSignals(clock === undefined ? {} : { clock });
  return new Governor({ ...options, signals });
}
