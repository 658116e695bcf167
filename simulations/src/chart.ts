/**
 * Charts of a run, or of several modes overlaid: offered load and goodput, the throttle factor,
 * and the dominant signal over time. Built as a vega-lite spec, compiled to vega and rendered to
 * SVG headlessly. vega and vega-lite are loaded on first use only, so the simulator core (and
 * Spillway itself) never loads them.
 */
import type { SimReport } from './report.js';

/** The vega-lite spec for `reports` (one run, or several modes of the same scenario). */
export function chartSpec(reports: SimReport | readonly SimReport[]): Record<string, unknown> {
  const list: readonly SimReport[] = Array.isArray(reports) ? reports : [reports as SimReport];
  const multi = list.length > 1;
  const first = list[0];
  if (first === undefined) throw new TypeError('renderChart: no report to draw');
  const rates: Record<string, unknown>[] = [];
  const factors: Record<string, unknown>[] = [];
  const dominant: Record<string, unknown>[] = [];
  const signals = new Set<string>();
  // With retries, each mode offers its own load; without, the load is the same for all.
  const perModeOffered = multi && list.some((r) => r.summary.retries > 0);
  const runName = (r: SimReport) => r.summary.label ?? r.summary.mode;
  for (const r of list) {
    const run = runName(r);
    for (const p of r.series) {
      if (perModeOffered) rates.push({ t: p.t, series: `offered (${run})`, value: p.offered });
      else if (r === first) rates.push({ t: p.t, series: 'offered', value: p.offered });
      rates.push({ t: p.t, series: multi ? `goodput (${run})` : 'goodput', value: p.goodput });
      if (!multi) rates.push({ t: p.t, series: 'refused', value: p.shed + p.limited });
      if (p.factor !== null) factors.push({ t: p.t, run, factor: p.factor });
      if (p.dominant !== null) signals.add(p.dominant);
      dominant.push({ t: p.t, t2: p.t + 1, run, signal: p.dominant ?? 'none', pressure: p.smoothedPressure });
    }
  }
  // One colour per run in every panel; offered load in grey; "no pressure" in light grey.
  const palette = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2', '#9d755d', '#bab0ac'];
  const runs = list.map(runName);
  const runColour = (i: number) => palette[i % palette.length]!;
  const rateDomain: string[] = [];
  const rateRange: string[] = [];
  if (perModeOffered) {
    runs.forEach((run, i) => {
      rateDomain.push(`offered (${run})`);
      rateRange.push(`${runColour(i)}88`);
    });
  } else {
    rateDomain.push('offered');
    rateRange.push('#888888');
  }
  runs.forEach((run, i) => {
    rateDomain.push(multi ? `goodput (${run})` : 'goodput');
    rateRange.push(runColour(i));
  });
  if (!multi) {
    rateDomain.push('refused');
    rateRange.push('#e45756');
  }
  const signalDomain = ['none', ...[...signals].sort()];
  const signalPalette = ['#9467bd', '#8c564b', '#17becf', '#bcbd22', '#7f7f7f', '#e377c2'];
  const signalRange = [
    '#eeeeee',
    ...signalDomain.slice(1).map((_, i) => signalPalette[i % signalPalette.length]!),
  ];
  const s = first.summary;
  const width = 720;
  const x = { field: 't', type: 'quantitative', title: 'time (s)', scale: { domain: [0, s.durationSec] } };
  const panels: Record<string, unknown>[] = [
    {
      title: 'requests per second',
      width,
      height: 200,
      data: { values: rates },
      mark: { type: 'line', strokeWidth: 1.5, interpolate: 'step-after' },
      encoding: {
        x,
        y: { field: 'value', type: 'quantitative', title: 'req/s' },
        color: {
          field: 'series',
          type: 'nominal',
          title: null,
          scale: { domain: rateDomain, range: rateRange },
        },
      },
    },
    {
      title: 'throttle factor',
      width,
      height: 110,
      data: { values: factors.length > 0 ? factors : [{ t: 0, run: runs[0], factor: 1 }] },
      mark: { type: 'line', interpolate: 'step-after' },
      encoding: {
        x,
        y: { field: 'factor', type: 'quantitative', title: 'factor', scale: { domain: [0, 1] } },
        color: {
          field: 'run',
          type: 'nominal',
          title: 'run',
          scale: { domain: runs, range: runs.map((_, i) => runColour(i)) },
        },
      },
    },
    {
      title: 'dominant signal (opacity: smoothed pressure)',
      width,
      height: 24 * list.length,
      data: { values: dominant },
      mark: { type: 'rect' },
      encoding: {
        x,
        x2: { field: 't2' },
        y: { field: 'run', type: 'nominal', title: null, sort: runs },
        color: {
          field: 'signal',
          type: 'nominal',
          title: 'signal',
          scale: { domain: signalDomain, range: signalRange },
        },
        opacity: {
          field: 'pressure',
          type: 'quantitative',
          scale: { domain: [0, 1], range: [0.25, 1] },
          legend: null,
        },
      },
    },
  ];
  // A shaded band for every overload episode on the first panel.
  if (s.episodes.length > 0) {
    const top = panels[0]!;
    panels[0] = {
      title: top['title'],
      width,
      height: 200,
      layer: [
        {
          data: { values: s.episodes.map((e) => ({ start: e.startSec, end: e.endSec })) },
          mark: { type: 'rect', color: '#f4cccc', opacity: 0.5 },
          encoding: { x: { field: 'start', type: 'quantitative', scale: x.scale }, x2: { field: 'end' } },
        },
        { data: top['data'], mark: top['mark'], encoding: top['encoding'] },
      ],
    };
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `${s.scenario}${multi ? '' : ` (${s.mode})`}`,
      subtitle: `capacity ${s.capacityPerSec.toFixed(0)} req/s, seed ${s.seed}; shaded: demand above capacity`,
    },
    background: 'white',
    vconcat: panels,
    resolve: { scale: { color: 'independent' } },
    config: { font: 'sans-serif', view: { stroke: null }, legend: { labelLimit: 300 } },
  };
}

/** Renders the chart for one report or several (overlaid modes) to an SVG string. */
export async function renderChart(reports: SimReport | readonly SimReport[]): Promise<string> {
  return renderSpec(chartSpec(reports));
}

/** Renders any vega-lite spec to an SVG string (vega and vega-lite loaded on first use). */
export async function renderSpec(spec: Record<string, unknown>): Promise<string> {
  const [vl, vega] = await Promise.all([import('vega-lite'), import('vega')]);
  const compiled = vl.compile(spec as unknown as Parameters<typeof vl.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
