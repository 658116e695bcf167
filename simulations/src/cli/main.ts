#!/usr/bin/env node
/**
 * The `spillway` command: run a scenario in the simulator, tune the governor on it, or run it live
 * against a real server. Tables go to stdout, progress and messages to stderr.
 *
 * Exit codes: 0 success, 1 failure (an invalid scenario file, a run that failed), 2 usage error.
 */
import { constants, realpathSync } from 'node:fs';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isConfigError } from 'spillway';
import { formatSummaryTable, type SimReport, writeReport } from '../report.js';
import { loadScenario, MODES, type Mode, type Scenario } from '../scenario.js';
import { simulate, simulateAsync } from '../simulate.js';
import { tune } from '../tune.js';
import {
  type LiveReport,
  measureCapacity,
  runLive,
  SIM_LIKE_LIVE,
  scenarioForSim,
  simLiveDifferences,
} from '../live/live.js';
import { LIVE_MODES, type LiveMode } from '../live/server.js';
import {
  DEMO_PHASES,
  type DemoPhaseName,
  type DemoReport,
  demoChartSpec,
  readmeBlock,
  rederive,
  replaceReadmeBlock,
  runDemo,
} from '../live/demo.js';
import { renderSpec } from '../chart.js';
import { ProgressBar } from './progress.js';

/** A command-line mistake: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface CliIO {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown; readonly isTTY?: boolean; readonly columns?: number };
  cwd: string;
}

const MAIN_HELP = `Usage: spillway <command> [options]

Commands:
  simulate <scenario.json>   run a scenario in the simulator (virtual time, seconds to run)
  tune <scenario.json>       search governor settings for a scenario with the simulator
  live <scenario.json>       run a scenario against a real server under real open-loop load
  demo [scenario.json]       the live demo: tenants under CPU-bound and pool-bound overload, with
                             and without Spillway, and what acted in each phase

Run 'spillway <command> --help' for a command's options.
`;

const HELP: Record<string, string> = {
  simulate: `Usage: spillway simulate <scenario.json> [options]

Runs the scenario in the simulator and prints a summary table per mode.

Options:
  --mode <m>     none | static | spillway | all (the scenario's modes)   [default: all]
  --seed <n>     random seed (an integer >= 0)                          [default: the scenario's]
  --out <dir>    where to write <scenario>-<mode>.json/.csv/.svg       [default: simulations/out/<scenario>]
  -h, --help     show this help
`,
  tune: `Usage: spillway tune <scenario.json> [options]

Searches the governor's settings on the scenario (simulated) and prints the baseline and the best.

Options:
  --budget <n>   simulations to run in all (an integer >= 1)             [default: 40]
  --out <dir>    where to write <scenario>-tune.json                     [default: simulations/out/<scenario>]
  -h, --help     show this help
`,
  live: `Usage: spillway live <scenario.json> [options]

Measures the capacity of a real node:http server (a handler that burns --cpu-ms per request), then
runs the scenario's traffic scaled to that capacity, open-loop, from a separate process, under each
mode, and prints the same table as 'simulate'.

Options:
  --mode <m>             none | spillway | under-pressure | toobusy | overload-protection,
                         a comma-separated list, or all (the scenario's modes that run live)
                                                                    [default: all]
  --duration-scale <k>   multiply every time in the scenario by k (0.5: twice as fast) [default: 1]
  --cpu-ms <ms>          CPU time each request burns                [default: 2]
  --capacity <n>         skip the measurement, use n requests/s     [default: measured]
  --seed <n>             random seed of the arrivals                [default: the scenario's]
  --out <dir>            where to write the reports                 [default: simulations/out/<scenario>-live]
  --compare-sim          also simulate the scenario at the measured capacity and show how
                         close the simulator comes (goodput, p99, time to engage)
  -h, --help             show this help

The peer modes need their packages (devDependencies of Spillway).
`,
  demo: `Usage: spillway demo [scenario.json] [options]

Runs the demo's phases one after another, each a real server under real open-loop load on
127.0.0.1: CPU-bound (2 ms a request) without protection and behind Spillway (per-tenant quotas
scaled by the governor, the loop-turn budget), then pool-bound (8 slots held 20 ms) without
protection and behind Spillway's concurrency stage. The scenario (three tenants of different rates)
defaults to simulations/scenarios/demo-tenants.json. Prints one line per phase saying which
mechanism acted, read from the guard's recorded decisions, and writes the chart (factor, per-key
quota, queue time).

Options:
  --phases <list>        a comma-separated list of ${DEMO_PHASES.map((p) => p.name).join(', ')}
                                                                    [default: all]
  --duration-scale <k>   multiply every time in the scenario by k (0.5: twice as fast) [default: 1]
  --capacity-cpu <n>     skip the CPU-bound measurement, use n requests/s  [default: measured]
  --capacity-pool <n>    skip the pool-bound measurement, use n requests/s [default: measured]
  --out <dir>            where to write demo.json, demo.svg, demo.md [default: simulations/out/demo]
  --readme <file>        rewrite the block between the demo markers in this file with the lines
  --from <demo.json>     no run: read a recorded demo.json again (lines and chart derived afresh)
  -h, --help             show this help
`,
};

function parse<T extends Record<string, { type: 'string' | 'boolean'; short?: string }>>(
  command: string,
  args: string[],
  options: T,
) {
  try {
    return parseArgs({
      args,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
    });
  } catch (err) {
    throw new UsageError(argumentMessage(err as Error & { code?: string }), command);
  }
}

/** Node's argument-parser messages, said in this command's words. */
function argumentMessage(err: Error & { code?: string }): string {
  const option = /'(--?[\w-]+)/.exec(err.message)?.[1] ?? 'an option';
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option '${option}'`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return /ambiguous/.test(err.message)
        ? `${option} needs a value; for a value starting with "-", write ${option}=<value>`
        : `${option} needs a value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return 'too many arguments';
    default:
      return err.message;
  }
}

function intOption(command: string, name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be an integer >= ${min}, got "${v}"`, command);
  return n;
}

function numOption(command: string, name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(`--${name} must be a number > 0, got "${v}"`, command);
  return n;
}

function scenarioPath(command: string, positionals: string[], io: CliIO): string {
  if (positionals.length === 0) throw new UsageError('missing the scenario file', command);
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`, command);
  return resolve(io.cwd, positionals[0]!);
}

/** Loads the scenario, with a plain message when the file is not there. */
async function readScenario(path: string): Promise<Scenario> {
  try {
    await access(path, constants.R_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ScenarioFileError(
      code === 'ENOENT'
        ? `scenario file not found: ${path}`
        : `cannot read the scenario file ${path} (${code})`,
    );
  }
  return loadScenario(path);
}

/** The scenario file is missing or unreadable (exit code 1). */
class ScenarioFileError extends Error {}

function outDir(io: CliIO, out: string | undefined, scenario: Scenario, suffix = ''): string {
  return resolve(io.cwd, out ?? join('simulations', 'out', `${scenario.name}${suffix}`));
}

function wrote(io: CliIO, paths: readonly string[]): void {
  io.stdout.write(`\nWrote:\n${paths.map((p) => `  ${p}`).join('\n')}\n`);
  const charts = paths.filter((p) => p.endsWith('.svg'));
  const chart = charts.find((p) => p.endsWith('-compare.svg')) ?? charts[0];
  if (chart !== undefined) io.stdout.write(`\nChart: ${chart}\n`);
}

async function cmdSimulate(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse('simulate', args, {
    mode: { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string' },
  });
  if (values.help) {
    io.stdout.write(HELP['simulate']!);
    return 0;
  }
  const path = scenarioPath('simulate', positionals, io);
  const modeArg = values.mode ?? 'all';
  if (modeArg !== 'all' && !MODES.includes(modeArg as Mode)) {
    throw new UsageError(
      `--mode must be one of ${[...MODES, 'all'].join(', ')}, got "${modeArg}"`,
      'simulate',
    );
  }
  const seed = intOption('simulate', 'seed', values.seed, 0);
  const scenario = await readScenario(path);
  const modes = modeArg === 'all' ? scenario.modes : [modeArg as Mode];
  const bar = new ProgressBar(io.stderr);
  const reports: SimReport[] = [];
  for (const [i, mode] of modes.entries()) {
    bar.update(i, modes.length, `simulating ${mode}`);
    reports.push(await simulateAsync(scenario, { mode, ...(seed === undefined ? {} : { seed }) }));
  }
  bar.done();
  io.stdout.write(`${formatSummaryTable(reports)}\n`);
  wrote(io, await writeReport(reports, outDir(io, values.out, scenario)));
  return 0;
}

async function cmdTune(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse('tune', args, {
    budget: { type: 'string' },
    out: { type: 'string' },
  });
  if (values.help) {
    io.stdout.write(HELP['tune']!);
    return 0;
  }
  const path = scenarioPath('tune', positionals, io);
  const budget = intOption('tune', 'budget', values.budget, 1);
  const scenario = await readScenario(path);
  const bar = new ProgressBar(io.stderr);
  const result = await tune(scenario, {
    ...(budget === undefined ? {} : { budget }),
    onProgress: (done, total) => bar.update(done, total, 'tuning'),
  });
  bar.done();
  const keys = Object.keys(result.baseline.params) as (keyof typeof result.baseline.params)[];
  const rows: [string, string, string][] = [
    ['', 'baseline', 'best'],
    ...keys.map((k): [string, string, string] => [
      k,
      String(result.baseline.params[k]),
      String(result.best.params[k]),
    ]),
    ['score', result.baseline.score.toFixed(4), result.best.score.toFixed(4)],
    ['goodput / achievable', pct(result.baseline.goodputRatio), pct(result.best.goodputRatio)],
    ['p99 (ms)', ms(result.baseline.p99Ms), ms(result.best.p99Ms)],
    [
      'factor turns / min',
      result.baseline.factorTurnsPerMin.toFixed(2),
      result.best.factorTurnsPerMin.toFixed(2),
    ],
  ];
  io.stdout.write(`${scenario.name}: ${result.trials.length} simulations\n${table(rows)}\n`);
  const dir = outDir(io, values.out, scenario);
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${scenario.name}-tune.json`);
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  io.stdout.write(
    `\nBest settings for "spillway.governor" in the scenario:\n${JSON.stringify(result.best.params)}\n`,
  );
  wrote(io, [file]);
  return 0;
}

async function cmdLive(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse('live', args, {
    mode: { type: 'string' },
    'duration-scale': { type: 'string' },
    'cpu-ms': { type: 'string' },
    capacity: { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string' },
    'compare-sim': { type: 'boolean' },
  });
  if (values.help) {
    io.stdout.write(HELP['live']!);
    return 0;
  }
  const path = scenarioPath('live', positionals, io);
  const modeArg = values.mode ?? 'all';
  const listed = modeArg === 'all' ? [] : modeArg.split(',').map((m) => m.trim());
  for (const m of listed) {
    if (!LIVE_MODES.includes(m as LiveMode)) {
      throw new UsageError(
        `--mode must be one of ${[...LIVE_MODES, 'all'].join(', ')} (or a list), got "${m}"`,
        'live',
      );
    }
  }
  const durationScale = numOption('live', 'duration-scale', values['duration-scale']) ?? 1;
  const cpuMs = numOption('live', 'cpu-ms', values['cpu-ms']) ?? 2;
  const given = numOption('live', 'capacity', values.capacity);
  const seed = intOption('live', 'seed', values.seed, 0);
  const scenario = await readScenario(path);
  const modes: LiveMode[] =
    listed.length > 0
      ? (listed as LiveMode[])
      : (scenario.modes as readonly string[]).filter((m): m is LiveMode =>
          LIVE_MODES.includes(m as LiveMode),
        );
  if (modes.length === 0)
    throw new UsageError(`the scenario lists no mode that runs live; pass --mode`, 'live');

  const bar = new ProgressBar(io.stderr);
  bar.update(0, 1, 'measuring capacity');
  const capacity =
    given === undefined
      ? await measureCapacity({ cpuMs })
      : { measuredPerSec: null, derivedPerSec: 1000 / cpuMs, usedPerSec: given, method: 'derived' as const };
  bar.done();
  io.stderr.write(
    `capacity: ${capacity.usedPerSec.toFixed(0)} req/s (${capacity.method}` +
      `${capacity.measuredPerSec === null ? '' : `; the handler's cost alone allows ${capacity.derivedPerSec.toFixed(0)}`})\n`,
  );
  const reports: LiveReport[] = [];
  for (const mode of modes) {
    reports.push(
      await runLive(scenario, {
        mode,
        cpuMs,
        durationScale,
        capacityPerSec: capacity.usedPerSec,
        ...(seed === undefined ? {} : { seed }),
        onProgress: (done, total, label) => bar.update(done, total, `live ${label}`),
      }),
    );
    bar.done();
  }
  const withCapacity = reports.map((r) => ({ ...r, live: { ...r.live, capacity } }));
  io.stdout.write(`${formatSummaryTable(withCapacity)}\n`);
  io.stdout.write(
    `\n${reports.map((r) => `${r.live.mode}: ${r.live.connections} connections, client timeouts ${r.live.timeouts}, errors ${r.live.errors}, generator lag p99 ${r.live.p99SendLagMs} ms, on/off switches (100 ms slices) ${r.live.sliceSwitches.join(', ') || '-'}`).join('\n')}\n`,
  );
  if (values['compare-sim'])
    io.stdout.write(`\n${compareTable(scenario, withCapacity, durationScale, seed)}\n`);
  wrote(io, await writeReport(withCapacity, outDir(io, values.out, scenario, '-live')));
  return 0;
}

/** For each live report of a mode the simulator knows: simulated against live, first episode. */
function compareTable(
  scenario: Scenario,
  reports: readonly LiveReport[],
  durationScale: number,
  seed: number | undefined,
): string {
  const rows: string[][] = [['first episode', 'simulated', 'live', 'live - sim']];
  for (const live of reports) {
    const mode = live.live.mode;
    if (!MODES.includes(mode as Mode)) continue;
    const sim = simulate(scenarioForSim(scenario, live.summary.capacityPerSec, durationScale), {
      mode: mode as Mode,
      ...(seed === undefined ? {} : { seed }),
      ...SIM_LIKE_LIVE,
    });
    const d = simLiveDifferences(sim, live);
    const se = sim.summary.episodes[0];
    const le = live.summary.episodes[0];
    rows.push(
      [
        `${mode}: goodput / capacity`,
        pct(se?.goodputShare ?? 0),
        pct(le?.goodputShare ?? 0),
        pct(d.goodputShareOfCapacity),
      ],
      [`${mode}: p99 (ms)`, ms(se?.p99Ms ?? null), ms(le?.p99Ms ?? null), ms(d.p99Ms)],
      [`${mode}: engage (ms)`, ms(se?.engageMs ?? null), ms(le?.engageMs ?? null), ms(d.engageMs)],
    );
  }
  return rows.length > 1 ? table(rows) : 'no mode to compare with the simulator (none, spillway)';
}

function pct(v: number): string {
  return `${(v * 100).toFixed(1)}%`;
}

function ms(v: number | null): string {
  return v === null ? '-' : v.toFixed(1);
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r) => r.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join('  '))
    .join('\n');
}

async function cmdDemo(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse('demo', args, {
    phases: { type: 'string' },
    'duration-scale': { type: 'string' },
    'capacity-cpu': { type: 'string' },
    'capacity-pool': { type: 'string' },
    out: { type: 'string' },
    readme: { type: 'string' },
    from: { type: 'string' },
  });
  if (values.help) {
    io.stdout.write(HELP['demo']!);
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`, 'demo');
  const path =
    positionals[0] === undefined
      ? fileURLToPath(new URL('../../scenarios/demo-tenants.json', import.meta.url))
      : resolve(io.cwd, positionals[0]);
  const names = DEMO_PHASES.map((p) => p.name);
  const phases = (values.phases ?? names.join(',')).split(',').map((p) => p.trim());
  for (const p of phases) {
    if (!names.includes(p as DemoPhaseName))
      throw new UsageError(`--phases must list some of ${names.join(', ')}, got "${p}"`, 'demo');
  }
  const durationScale = numOption('demo', 'duration-scale', values['duration-scale']) ?? 1;
  const cpu = numOption('demo', 'capacity-cpu', values['capacity-cpu']);
  const pool = numOption('demo', 'capacity-pool', values['capacity-pool']);
  let demo: DemoReport;
  if (values.from !== undefined) {
    // A recorded run, read again: no load, the lines and chart derived afresh from its reports.
    const recorded = JSON.parse(await readFile(resolve(io.cwd, values.from), 'utf8')) as DemoReport;
    if (!Array.isArray(recorded?.phases))
      throw new UsageError(`--from ${values.from} is not a demo.json (no phases)`, 'demo');
    demo = rederive(recorded);
  } else {
    const scenario = await readScenario(path);
    const bar = new ProgressBar(io.stderr);
    demo = await runDemo(scenario, {
      phases: phases as DemoPhaseName[],
      durationScale,
      capacityPerSec: { ...(cpu === undefined ? {} : { cpu }), ...(pool === undefined ? {} : { pool }) },
      onProgress: (done, total, label) => bar.update(done, total, label),
    });
    bar.done();
  }
  const reports = demo.phases.map((p) => ({
    ...p.report,
    summary: { ...p.report.summary, label: p.phase.name },
  }));
  io.stdout.write(`${formatSummaryTable(reports)}

`);
  const block = readmeBlock(demo);
  io.stdout.write(`${block}
`);
  const dir = resolve(io.cwd, values.out ?? join('simulations', 'out', 'demo'));
  await mkdir(dir, { recursive: true });
  const files = [join(dir, 'demo.json'), join(dir, 'demo.md'), join(dir, 'demo.svg')];
  const spec = demoChartSpec(demo);
  await writeFile(
    files[0]!,
    `${JSON.stringify({ ...demo, chart: spec }, null, 2)}
`,
  );
  await writeFile(
    files[1]!,
    `${block}
`,
  );
  await writeFile(files[2]!, await renderSpec(spec));
  if (values.readme !== undefined) {
    const readme = resolve(io.cwd, values.readme);
    await writeFile(readme, replaceReadmeBlock(await readFile(readme, 'utf8'), block));
    files.push(readme);
  }
  wrote(io, files);
  return 0;
}

const COMMANDS: Record<string, (args: string[], io: CliIO) => Promise<number>> = {
  simulate: cmdSimulate,
  tune: cmdTune,
  live: cmdLive,
  demo: cmdDemo,
};

/** Runs the command line `argv` (without node and the script) and resolves with the exit code. */
export async function main(argv: readonly string[], io: CliIO): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    (command === undefined ? io.stderr : io.stdout).write(MAIN_HELP);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  try {
    if (run === undefined) throw new UsageError(`unknown command "${command}"`);
    return await run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`spillway: ${err.message}\n\n${err.command ? HELP[err.command] : MAIN_HELP}`);
      return 2;
    }
    if (isConfigError(err) || err instanceof ScenarioFileError) {
      io.stderr.write(`spillway: ${(err as Error).message}\n`);
      return 1;
    }
    io.stderr.write(`spillway: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}

function isEntry(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    // Through npm's `bin` link argv[1] is the link; compare real paths.
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) {
  main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd() }).then(
    (code) => {
      process.exitCode = code;
    },
  );
}
