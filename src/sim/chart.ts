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
  // With retries, each mode offers its own load; without, the load is the same for all.
  const perModeOffered = multi && list.some((r) => r.summary.retries > 0);
  for (const r of list) {
    const mode = r.summary.label ?? r.summary.mode;
    for (const p of r.series) {
      if (perModeOffered) rates.push({ t: p.t, series: `offered (${mode})`, value: p.offered });
      else if (r === first) rates.push({ t: p.t, series: 'offered', value: p.offered });
      rates.push({ t: p.t, series: multi ? `goodput (${mode})` : 'goodput', value: p.goodput });
      if (!multi) rates.push({ t: p.t, series: 'shed', value: p.shed + p.limited });
      if (p.factor !== null) factors.push({ t: p.t, mode, factor: p.factor });
      dominant.push({
        t: p.t,
        t2: p.t + 1,
        mode,
        signal: p.dominant ?? 'none',
        pressure: p.smoothedPressure,
      });
    }
  }
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
        color: { field: 'series', type: 'nominal', title: null },
      },
    },
    {
      title: 'throttle factor',
      width,
      height: 110,
      data: { values: factors.length > 0 ? factors : [{ t: 0, mode: 'none', factor: 1 }] },
      mark: { type: 'line', interpolate: 'step-after' },
      encoding: {
        x,
        y: { field: 'factor', type: 'quantitative', title: 'factor', scale: { domain: [0, 1] } },
        color: { field: 'mode', type: 'nominal', title: 'mode' },
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
        y: { field: 'mode', type: 'nominal', title: null },
        color: { field: 'signal', type: 'nominal', title: 'signal' },
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
  const [vl, vega] = await Promise.all([import('vega-lite'), import('vega')]);
  const compiled = vl.compile(chartSpec(reports) as unknown as Parameters<typeof vl.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
