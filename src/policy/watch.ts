/**
 * Hot reload from a file: watch it (fs.watch on its directory, since editors replace files), and on
 * a change read, validate and apply it. A bad file is refused (the runtime emits `rejected`) and
 * the policy in force keeps running.
 */
import { type FSWatcher, watch as fsWatch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { isPolicyError, loadPolicy, PolicyError } from './load.js';
import type { PolicyReload, PolicyRuntime } from './runtime.js';

export interface WatchPolicyOptions {
  /** Quiet time after the last change event before the file is read, in ms. @default 100 */
  debounceMs?: number;
  /** Environment for `SPILLWAY_*` overrides. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
  /** The watcher (tests inject). @default fs.watch */
  watch?: (dir: string, listener: (event: string, file: string | null) => void) => Pick<FSWatcher, 'close'>;
}

export interface PolicyWatcher {
  /** Reads and applies the file now. Resolves with the reload, or with the refusal (never rejects). */
  reload(): Promise<PolicyReload | PolicyError>;
  close(): void;
}

export function watchPolicy(
  file: string,
  runtime: PolicyRuntime,
  options: WatchPolicyOptions = {},
): PolicyWatcher {
  const path = resolve(file);
  const name = basename(path);
  const debounceMs = options.debounceMs ?? 100;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let chain: Promise<unknown> = Promise.resolve();

  const reload = (): Promise<PolicyReload | PolicyError> => {
    // One reload at a time, in order of the changes.
    const next = chain.then(async () => {
      try {
        const policy = await loadPolicy(path, options.env === undefined ? {} : { env: options.env });
        return runtime.update(policy, { validated: true });
      } catch (err) {
        // The policy in force stays; the refusal is reported as an event.
        const error = isPolicyError(err)
          ? err
          : new PolicyError([{ path: '(file)', value: path, allowed: (err as Error).message }], path);
        runtime.emit('rejected', error);
        return error;
      }
    });
    chain = next;
    return next;
  };

  const watcher = (options.watch ?? ((dir, listener) => fsWatch(dir, { persistent: false }, listener)))(
    dirname(path),
    (_event, changed) => {
      if (changed !== null && changed !== name) return;
      clearTimeout(timer);
      timer = setTimeout(() => void reload(), debounceMs);
      timer.unref?.();
    },
  );
  return {
    reload,
    close() {
      clearTimeout(timer);
      watcher.close();
    },
  };
}
