/**
 * The HTML report of a run: one self-contained file (uPlot and its CSS inlined, the data as a
 * JSON block) that works offline from file://. Charts over emulated time: memory composition
 * (stacked by frame category, with dirty and writeback pages and swap used), fault and swap
 * rates, file I/O, per-process RSS, CPU utilization with the TLB hit rate and run queue. Physical
 * frame maps, each frame coloured by owner and type (free, kernel, slab, page table, anonymous
 * memory of each process, shared memory, swap cache, file), at the chosen times, at the sample
 * with the most memory in use and at the end; per-process and system tables; the workload.
 * When a process had a managed heap (userland/gc): its heap and live bytes over time, every
 * pause the kernel kept (when it ended, how long it was), and a table of the collectors.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { gcPauses, pausePercentiles } from '../observe/procgc.ts';
import { FRAME_CATEGORIES, type FrameMap, type Timeline, takeFrameMap } from '../observe/timeline.ts';
import type { Kernel } from '../proc/kernel.ts';
import type { RunSummary } from './cmd-run.ts';

export interface ReportInput {
  title: string;
  workloadText: string;
  args: string[];
  summary: RunSummary;
  /** The run's timeline: its samples, its chosen and peak frame maps. */
  timeline: Timeline;
  /** The machine at the end of the run (the last frame map is drawn from it). */
  kernel: Kernel;
}

/** A frame map as the report shows it: maps of one time merged, their reasons and asked times joined. */
export type ReportFrameMap = FrameMap & { reasons: Array<FrameMap['reason']>; askedTimes: number[] };

/** The frame maps a report shows, in time order: the chosen ones, the peak and the end. */
export function reportFrameMaps(timeline: Timeline, kernel: Kernel): ReportFrameMap[] {
  const all = [...timeline.chosenMaps];
  if (timeline.peakMap !== null) all.push(timeline.peakMap);
  all.push(takeFrameMap(kernel, 'end'));
  const byTime = new Map<number, ReportFrameMap>();
  for (const map of all.sort((a, b) => a.time - b.time)) {
    let merged = byTime.get(map.time);
    if (merged === undefined) {
      merged = { ...map, reasons: [], askedTimes: [] };
      byTime.set(map.time, merged);
    }
    if (!merged.reasons.includes(map.reason)) merged.reasons.push(map.reason);
    if (map.askedTime !== undefined) merged.askedTimes.push(map.askedTime);
  }
  return [...byTime.values()];
}

/** The report as one HTML string. */
export function renderReport(input: ReportInput): string {
  const require = createRequire(import.meta.url);
  const dist = require.resolve('uplot/dist/uPlot.iife.min.js');
  const uplotJs = readFileSync(dist, 'utf8');
  const uplotCss = readFileSync(dist.replace('uPlot.iife.min.js', 'uPlot.min.css'), 'utf8');
  const data = reportData(input);
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${escapeHtml(input.title)}</title>
<style>${uplotCss}
${STYLE}</style></head><body>
<header><h1>${escapeHtml(input.title)}</h1><p id="description"></p></header>
<section><div id="system"></div></section>
<section><h2>Memory composition</h2><p class="note">Physical memory by frame category, stacked (MiB); dirty and writeback pages of the page cache and swap used as lines. Dotted lines mark the frame maps below. <span id="memory-note"></span></p><div class="chart" id="c-memory"></div></section>
<section><h2>Fault and swap rates</h2><p class="note">Per emulated second: page faults (all and major), pages swapped in and out.</p><div class="chart" id="c-rates"></div></section>
<section><h2>File I/O</h2><p class="note">Pages per emulated second read into the page cache (misses and readahead) and written back to files.</p><div class="chart" id="c-files"></div></section>
<section><h2>Resident set of each process</h2><p class="note">RSS in MiB, while the process has an address space.</p><div class="chart" id="c-rss"></div></section>
<section><h2>CPU and TLB</h2><p class="note">CPU utilization and TLB hit rate over each interval (%, left), run-queue length (right).</p><div class="chart" id="c-cpu"></div></section>
${data.gc === null ? '' : GC_SECTION}
<section><h2>Physical frames</h2><p class="note" id="frames-note"></p><div id="maps"></div><div id="frame-tip" hidden></div></section>
<section><h2>Processes</h2><div id="procs"></div></section>
<section><h2>Parameters</h2><pre id="args"></pre></section>
<section><h2>Kernel log</h2><pre id="log"></pre></section>
<section><h2>Workload</h2><pre id="workload"></pre></section>
<script type="application/json" id="data">${json}</script>
<script>${uplotJs}</script>
<script>${CLIENT}</script></body></html>
`;
}

/** What the page's script draws, as JSON-ready data (times in emulated milliseconds, sizes in MiB). */
function reportData(input: ReportInput) {
  const { kernel, timeline, summary } = input;
  const hz = kernel.hw.clock.hz;
  const ms = (cycles: number) => (1000 * cycles) / hz;
  const pageBytes = kernel.hw.format.pageBytes;
  const mib = (pages: number) => (pages * pageBytes) / (1024 * 1024);
  const s = timeline.samples;
  const maps = reportFrameMaps(timeline, kernel);
  const names = new Map<number, string>(summary.processes.map((p) => [p.pid, p.name]));
  for (const map of maps) for (const p of map.processes) if (!names.has(p.pid)) names.set(p.pid, p.name);
  const rssPids = new Set(s.flatMap((x) => Object.keys(x.rss).map(Number)));
  for (const pid of rssPids) if (!names.has(pid)) names.set(pid, 'pid');
  const processes = [...names].sort((a, b) => a[0] - b[0]).map(([pid, name]) => ({ pid, name }));
  const taken = new Set(timeline.chosenMaps.map((m) => m.askedTime));
  return {
    pageBytes,
    endMs: ms(kernel.hw.clock.now),
    t: s.map((x) => ms(x.time)),
    memory: {
      kernel: s.map((x) => mib(x.kernelPages)),
      slab: s.map((x) => mib(x.slabPages)),
      pageTables: s.map((x) => mib(x.pageTablePages)),
      anon: s.map((x) => mib(x.anonPages)),
      shmem: s.map((x) => mib(x.shmemPages)),
      swapCacheOnly: s.map((x) => mib(x.swapCacheOnlyPages)),
      swapCached: s.map((x) => mib(x.swapCachedPages)),
      file: s.map((x) => mib(x.filePages)),
      free: s.map((x) => mib(x.freePages + x.pcpPages)),
      dirty: s.map((x) => mib(x.dirtyPages)),
      writeback: s.map((x) => mib(x.writebackPages)),
      swapUsed: s.map((x) => mib(x.swapUsedPages)),
    },
    rates: {
      faults: s.map((x) => x.faultsPerSecond),
      majorFaults: s.map((x) => x.majorFaultsPerSecond),
      swapIn: s.map((x) => x.swapInPerSecond),
      swapOut: s.map((x) => x.swapOutPerSecond),
    },
    files: {
      read: s.map((x) => x.fileReadPerSecond),
      written: s.map((x) => x.fileWritePerSecond),
    },
    cpu: s.map((x) => 100 * x.cpuUtilization),
    tlb: s.map((x) => 100 * x.tlbHitRate),
    runQueue: s.map((x) => x.runQueue),
    processes,
    rss: [...rssPids]
      .sort((a, b) => a - b)
      .map((pid) => ({ pid, values: s.map((x) => (x.rss[pid] === undefined ? null : mib(x.rss[pid]!))) })),
    categories: FRAME_CATEGORIES,
    maps: maps.map(({ askedTime: _, ...m }) => ({
      ...m,
      time: ms(m.time),
      askedTimes: m.askedTimes.map(ms),
    })),
    missedMaps: timeline.chosenTimes.filter((t) => !taken.has(t)).map(ms),
    gc: gcData(input, ms),
    summary,
    args: input.args,
    workload: input.workloadText,
  };
}

/**
 * The managed heaps' part of the report, or null when no process had one: heap and live MiB
 * per process at each sample (null where the process had no heap), every kept pause as
 * (end time in ms, length in µs) on one time axis for all processes, and a row per heap.
 */
function gcData(input: ReportInput, ms: (cycles: number) => number) {
  const { kernel, timeline, summary } = input;
  const s = timeline.samples;
  const mib = (bytes: number) => bytes / (1024 * 1024);
  const tasks = [...kernel.tasks.values()].filter((t) => t.gc !== null).sort((a, b) => a.pid - b.pid);
  const pids = new Set<number>(tasks.map((t) => t.pid));
  for (const x of s) for (const pid of Object.keys(x.gc)) pids.add(Number(pid));
  if (pids.size === 0) return null;
  const sorted = [...pids].sort((a, b) => a - b);
  const perPid = (pick: (g: { heapBytes: number; liveBytes: number }) => number) =>
    sorted.map((pid) => ({
      pid,
      values: s.map((x) => (x.gc[pid] === undefined ? null : mib(pick(x.gc[pid]!)))),
    }));
  const pauses = tasks.map((t) => ({ pid: t.pid, ...gcPauses(t) }));
  const times = [...new Set(pauses.flatMap((p) => p.timesCycles))].sort((a, b) => a - b);
  const column = new Map<number, number>(times.map((t, i) => [t, i]));
  const pauseSeries = pauses.map((p) => {
    const values: Array<number | null> = times.map(() => null);
    // Two pauses reported at the same cycle share a column: the longer one is drawn.
    p.timesCycles.forEach((t, i) => {
      const c = column.get(t)!;
      values[c] = Math.max(values[c] ?? 0, p.lengthsNs[i]! / 1000);
    });
    return { pid: p.pid, values };
  });
  const rows = tasks.map((t) => {
    const g = t.gc!;
    const p = pausePercentiles(gcPauses(t).lengthsNs);
    return {
      pid: t.pid,
      name: summary.processes.find((q) => q.pid === t.pid)?.name ?? t.comm,
      ...g,
      pauses: p,
    };
  });
  return {
    heap: perPid((g) => g.heapBytes),
    live: perPid((g) => g.liveBytes),
    pauses: { t: times.map(ms), series: pauseSeries },
    rows,
  };
}

const GC_SECTION = `<section id="gc"><h2>Managed heaps</h2><p class="note">Each garbage-collected heap's size (what its collector holds from the kernel) and its live bytes (found by the last collection), MiB, as its runtime last reported them at each sample.</p><div class="chart" id="gc-heap"></div>
<p class="note">Every pause the kernel kept: when its report arrived (emulated ms) and how long the pause was (emulated µs).</p><div class="chart" id="gc-pauses"></div><div id="gc-table"></div></section>`;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:20px 28px 40px;max-width:1180px;color:#1d232a;background:#fff}
header h1{font-size:21px;margin:0 0 2px}header p{margin:0;color:#555}
h2{font-size:16px;margin:0 0 2px}h3{font-size:14px;margin:18px 0 2px}
section{margin-top:26px}.note{margin:0 0 8px;color:#5b636b;font-size:13px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}td,th{border:1px solid #d6d9dc;padding:3px 9px;text-align:right}
th{background:#f3f5f7;font-weight:600}td:first-child,th:first-child{text-align:left}
#procs td:nth-child(2),#procs td:nth-child(3),#gc-table td:nth-child(2),#gc-table td:nth-child(3){text-align:left}
#gc-table{overflow-x:auto;margin-top:10px}
pre{background:#f6f7f8;border:1px solid #e3e5e7;padding:8px 10px;overflow:auto;font-size:12.5px;max-height:420px;margin:0}
.chart{min-height:300px}.u-legend{font-size:12.5px}.u-legend .u-marker{border-radius:2px}
.map{margin:14px 0 22px}.map h3 .when{font-variant-numeric:tabular-nums}.map .sub{margin:0 0 6px;color:#5b636b;font-size:13px}
.map canvas{display:block;image-rendering:pixelated;cursor:crosshair}
.legend{display:flex;flex-wrap:wrap;gap:3px 16px;margin:8px 0 0;font-size:12.5px;font-variant-numeric:tabular-nums}
.legend span{white-space:nowrap}.legend span.zero{color:#9aa1a8}
.legend i{display:inline-block;width:11px;height:11px;margin-right:5px;vertical-align:-1px;border:1px solid rgba(0,0,0,.18);border-radius:2px}
#frame-tip{position:fixed;pointer-events:none;background:#1d232a;color:#fff;font-size:12px;padding:4px 7px;border-radius:4px;white-space:nowrap;z-index:10}
.missed{color:#8a5a00}
i.swatch{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px;vertical-align:0}
`;

/** The page's script (plain ES2020 run in the browser; no template placeholders inside). */
const CLIENT = String.raw`
const D = JSON.parse(document.getElementById('data').textContent);
const W = Math.max(480, Math.min(1110, document.body.clientWidth - 56));
const CATEGORY_COLOURS = {
  'free': '#eef0f2', 'free (per-CPU list)': '#d3d7db', 'kernel': '#4a4f55', 'slab': '#8c564b',
  'page table': '#bcbd22', 'anonymous': '#1f77b4', 'anonymous, in the swap cache': '#1f77b4', 'swap cache': '#393b79',
  'shared memory': '#17becf', 'file': '#e7ba52',
};
const PROCESS_COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#e377c2', '#6baed6', '#fdae6b', '#74c476', '#ff9896', '#c5b0d5', '#f7b6d2'];
const processIndex = new Map(D.processes.map((p, i) => [p.pid, i]));
function processColour(pid) {
  const i = processIndex.has(pid) ? processIndex.get(pid) : D.processes.length + pid;
  if (i < PROCESS_COLOURS.length) return PROCESS_COLOURS[i];
  return 'hsl(' + Math.round((i * 137.508) % 360) + ',62%,' + (46 + (i % 3) * 9) + '%)';
}
function processLabel(pid) {
  const p = D.processes.find((q) => q.pid === pid);
  return (p ? p.name : 'pid') + ' [' + pid + ']';
}
function fmt(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return '--';
  if (digits !== undefined) return v.toFixed(digits);
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toFixed(3);
}
function msText(t) { return t.toFixed(3) + ' ms'; }
function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]); }

// Dotted vertical lines at the frame maps' times.
function markers() {
  return { hooks: { draw: [(u) => {
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = '#7a828a';
    ctx.setLineDash([3, 4]);
    ctx.lineWidth = 1;
    for (const m of D.maps) {
      const x = Math.round(u.valToPos(m.time, 'x', true)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
    }
    ctx.restore();
  }] } };
}

// One chart: lines (each {label, values, colour, dash, scale}) and optionally stacked layers under them.
function chart(id, lines, options) {
  const o = options || {};
  const layers = o.layers || [];
  const acc = D.t.map(() => 0);
  const stacked = layers.map((l) => l.values.map((v, i) => (acc[i] += v || 0)));
  const series = [{ label: 'time', value: (u, v) => (v === null ? '--' : msText(v)) }];
  layers.forEach((l) => series.push({
    label: l.label, stroke: l.colour, fill: l.colour, width: 1, show: l.show !== false, points: { show: false },
    value: (u, v, si, i) => (i === null || i === undefined ? '--' : fmt(l.values[i])),
  }));
  lines.forEach((l) => series.push({
    label: l.label, stroke: l.colour, width: l.width || 1.6, dash: l.dash, scale: l.scale || 'y',
    spanGaps: false, points: { show: false }, value: (u, v) => fmt(v, l.digits),
  }));
  const bands = layers.slice(1).map((l, k) => ({ series: [k + 2, k + 1], fill: l.colour }));
  const axes = [
    { label: 'emulated time (ms)', stroke: '#333', grid: { stroke: '#eceef0' } },
    { label: o.yLabel || '', size: 64, stroke: '#333', grid: { stroke: '#eceef0' } },
  ];
  const scales = { x: { time: false } };
  if (o.yRange) scales.y = { range: o.yRange };
  if (lines.some((l) => l.scale === 'right')) {
    axes.push({ scale: 'right', side: 1, label: o.rightLabel || '', size: 56, stroke: '#333', grid: { show: false } });
    scales.right = { range: (u, min, max) => [0, Math.max(1, Math.ceil(max * 1.1))] };
  }
  const el = document.getElementById(id);
  const data = [D.t].concat(stacked, lines.map((l) => l.values));
  el.dataset.points = String(D.t.length);
  el.dataset.series = String(layers.length + lines.length);
  el.dataset.nonzero = String(layers.concat(lines).filter((l) => l.values.some((v) => v !== null && v > 0)).length);
  return new uPlot({ width: W, height: o.height || 300, scales, series, bands, axes, plugins: [markers()], cursor: { drag: { x: true, y: false } } }, data, el);
}

const M = D.memory;
const cc = CATEGORY_COLOURS;
// Free memory on top of the stack; hidden at first when it would flatten the rest (used < 1/4).
const ramMiB = M.kernel.map((_, i) => M.kernel[i] + M.slab[i] + M.pageTables[i] + M.anon[i] + M.shmem[i] + M.swapCacheOnly[i] + M.file[i] + M.free[i]);
const hideFree = M.free.every((f, i) => f > 0.75 * ramMiB[i]);
document.getElementById('memory-note').textContent = hideFree
  ? 'Free memory (most of it throughout) is hidden to show the rest: click "free" in the legend to show it.'
  : 'Click a name in the legend to hide or show it.';
chart('c-memory', [
  { label: 'dirty', values: M.dirty, colour: '#c0392b', width: 2 },
  { label: 'writeback', values: M.writeback, colour: '#8e44ad', width: 2 },
  { label: 'in swap cache', values: M.swapCached, colour: '#393b79', dash: [2, 3], width: 2 },
  { label: 'swap used', values: M.swapUsed, colour: '#111', dash: [6, 4], width: 2 },
], { yLabel: 'MiB', height: 340, layers: [
  { label: 'kernel', values: M.kernel, colour: cc['kernel'] },
  { label: 'slab', values: M.slab, colour: cc['slab'] },
  { label: 'page tables', values: M.pageTables, colour: cc['page table'] },
  { label: 'anonymous', values: M.anon, colour: cc['anonymous'] },
  { label: 'shared memory', values: M.shmem, colour: cc['shared memory'] },
  { label: 'swap cache only', values: M.swapCacheOnly, colour: cc['swap cache'] },
  { label: 'cached (files)', values: M.file, colour: cc['file'] },
  { label: 'free', values: M.free, colour: '#dfe3e7', show: !hideFree },
] });
chart('c-rates', [
  { label: 'faults/s', values: D.rates.faults, colour: '#1f77b4' },
  { label: 'major faults/s', values: D.rates.majorFaults, colour: '#d62728' },
  { label: 'swap in pages/s', values: D.rates.swapIn, colour: '#2ca02c' },
  { label: 'swap out pages/s', values: D.rates.swapOut, colour: '#ff7f0e' },
], { yLabel: 'per second' });
chart('c-files', [
  { label: 'read pages/s', values: D.files.read, colour: '#e7a03c' },
  { label: 'written pages/s', values: D.files.written, colour: '#8e44ad' },
], { yLabel: 'pages per second', height: 240 });
chart('c-rss', D.rss.length > 0
  ? D.rss.map((r) => ({ label: processLabel(r.pid), values: r.values, colour: processColour(r.pid) }))
  : [{ label: 'no process', values: D.t.map(() => 0), colour: '#999' }], { yLabel: 'MiB' });
chart('c-cpu', [
  { label: 'CPU utilization %', values: D.cpu, colour: '#1f77b4', digits: 1 },
  { label: 'TLB hit rate %', values: D.tlb, colour: '#2ca02c', digits: 2 },
  { label: 'run queue', values: D.runQueue, colour: '#7f7f7f', scale: 'right', digits: 0 },
], { yLabel: '%', yRange: [0, 100], rightLabel: 'tasks' });

// ---- frame maps ----
const pageKiB = D.pageBytes / 1024;
function sizeText(frames) {
  const kib = frames * pageKiB;
  return kib >= 1024 ? fmt(kib / 1024) + ' MiB' : fmt(kib, 0) + ' KiB';
}
function reasonText(map, reason) {
  if (reason === 'peak') return 'the sample with the most memory in use';
  if (reason === 'end') return 'the end of the run';
  const asked = map.askedTimes.filter((t) => msText(t) !== msText(map.time));
  return asked.length === 0 ? 'asked for with --frame-map-at' : 'asked for at ' + asked.map(msText).join(', ') + ' with --frame-map-at';
}
function decode(map) {
  const codes = new Uint8Array(map.frameCount);
  const owners = new Int32Array(map.frameCount);
  let pfn = 0;
  for (let i = 0; i < map.runs.length; i += 3) {
    codes.fill(map.runs[i], pfn, pfn + map.runs[i + 2]);
    owners.fill(map.runs[i + 1], pfn, pfn + map.runs[i + 2]);
    pfn += map.runs[i + 2];
  }
  return { codes, owners };
}
const ANON = ['anonymous', 'anonymous, in the swap cache'];
const SWAPPED_ANON = D.categories.indexOf('anonymous, in the swap cache');
function frameColour(code, owner) {
  const c = D.categories[code];
  return ANON.includes(c) ? processColour(owner) : CATEGORY_COLOURS[c];
}
function ownerText(map, code, owner) {
  const c = D.categories[code];
  if (owner < 0) return '';
  if (ANON.includes(c) || c === 'swap cache') return processLabel(owner);
  if (c === 'file') { const f = map.files.find((x) => x.ino === owner); return 'inode ' + owner + (f && f.path ? ' ' + f.path : ''); }
  if (c === 'slab') { const s = map.slabCaches.find((x) => x.id === owner); return s ? s.name : 'cache ' + owner; }
  return '';
}
const DOT = 'radial-gradient(circle, #111 0 34%, transparent 40%)';
function legend(map, frames) {
  const perProcess = new Map();
  for (let i = 0; i < map.runs.length; i += 3)
    if (ANON.includes(D.categories[map.runs[i]])) perProcess.set(map.runs[i + 1], (perProcess.get(map.runs[i + 1]) || 0) + map.runs[i + 2]);
  const items = [];
  D.categories.forEach((c, code) => {
    if (c === 'anonymous') {
      if (perProcess.size === 0) items.push({ name: 'anonymous', colour: CATEGORY_COLOURS[c], n: 0 });
      for (const [pid, n] of [...perProcess].sort((a, b) => a[0] - b[0]))
        items.push({ name: 'anonymous: ' + processLabel(pid), colour: processColour(pid), n, pid });
    } else if (c === 'anonymous, in the swap cache') {
      items.push({ name: 'of which also in the swap cache (dot)', colour: '#c9ced3', background: DOT + ', #c9ced3', n: map.counts[code] });
    } else items.push({ name: c, colour: CATEGORY_COLOURS[c], n: map.counts[code] });
  });
  return '<div class="legend">' + items.map((it) => '<span class="' + (it.n === 0 ? 'zero' : '') + '"' + (it.pid !== undefined ? ' data-pid="' + it.pid + '"' : '')
    + ' data-category="' + esc(it.name) + '" data-frames="' + it.n + '" data-colour="' + it.colour + '"><i style="background:' + (it.background || it.colour) + '"></i>'
    + esc(it.name) + ' ' + it.n + ' (' + sizeText(it.n) + ', ' + fmt((100 * it.n) / frames, 1) + '%)</span>').join('') + '</div>';
}
function mapHeading(map) {
  const why = map.reasons.map((r) => reasonText(map, r)).join('; ');
  let sub;
  if (map.processes.length > 0) sub = 'Processes alive: ' + map.processes.map((p) => esc(p.name + ' [' + p.pid + ']')).join(', ') + '.';
  else if (map.reasons.includes('end')) sub = 'Every process has exited: what remains is the kernel, its slab caches and the page cache.';
  else sub = 'No process is alive at this time.';
  const used = map.frameCount - map.counts[0] - map.counts[1];
  return '<h3>At <span class="when">' + msText(map.time) + '</span>: ' + esc(why) + '</h3><p class="sub">' + sub + ' In use: ' + sizeText(used) + ' of ' + sizeText(map.frameCount) + '.</p>';
}
function drawMap(map, index) {
  const frames = map.frameCount;
  // At most 65536 cells: a cell shows the first frame of its group when frames are grouped.
  const group = Math.max(1, 2 ** Math.ceil(Math.log2(frames / 65536)));
  const cells = Math.ceil(frames / group);
  const cols = cells <= 8192 ? 128 : 256;
  const rows = Math.ceil(cells / cols);
  const labelW = 80;
  const cell = Math.max(3, Math.min(8, Math.floor((W - labelW) / cols)));
  const div = document.createElement('div');
  div.className = 'map';
  div.dataset.time = String(map.time);
  div.dataset.reasons = map.reasons.join(' ');
  div.innerHTML = mapHeading(map);
  const cv = document.createElement('canvas');
  const dpr = window.devicePixelRatio || 1;
  cv.width = Math.round((labelW + cols * cell) * dpr);
  cv.height = Math.round((rows * cell + 2) * dpr);
  cv.style.width = labelW + cols * cell + 'px';
  cv.style.height = rows * cell + 2 + 'px';
  cv.id = 'frames-' + index;
  cv.dataset.frames = String(frames);
  const ctx = cv.getContext('2d');
  ctx.scale(dpr, dpr);
  const { codes, owners } = decode(map);
  const gap = cell >= 5 ? 1 : 0;
  for (let k = 0; k < cells; k++) {
    const pfn = k * group;
    const x = labelW + (k % cols) * cell, y = Math.floor(k / cols) * cell;
    ctx.fillStyle = frameColour(codes[pfn], owners[pfn]);
    ctx.fillRect(x, y, cell - gap, cell - gap);
    if (codes[pfn] === SWAPPED_ANON && cell >= 4) {
      const d = Math.max(1, Math.floor((cell - gap) / 3));
      ctx.fillStyle = '#111';
      ctx.fillRect(x + d, y + d, cell - gap - 2 * d, cell - gap - 2 * d);
    }
  }
  ctx.fillStyle = '#5b636b';
  ctx.font = '11px ui-monospace,monospace';
  ctx.textBaseline = 'top';
  const every = Math.max(1, Math.ceil(14 / cell));
  for (let r = 0; r < rows; r += every) {
    const addr = r * cols * group * D.pageBytes;
    ctx.fillText('0x' + addr.toString(16).padStart(8, '0'), 0, r * cell);
  }
  div.appendChild(cv);
  const caption = document.createElement('div');
  caption.innerHTML = legend(map, frames) + '<p class="sub">' + frames + ' frames of ' + pageKiB + ' KiB, ' + cols + ' ' + (group > 1 ? 'cells (of ' + group + ' frames each)' : 'frames') + ' a row; the address of each row at the left.</p>';
  div.appendChild(caption);
  const tip = document.getElementById('frame-tip');
  cv.addEventListener('mousemove', (e) => {
    const r = cv.getBoundingClientRect();
    const x = e.clientX - r.left - labelW, y = e.clientY - r.top;
    const k = Math.floor(y / cell) * cols + Math.floor(x / cell);
    if (x < 0 || k < 0 || k >= cells) { tip.hidden = true; return; }
    const pfn = k * group;
    const who = ownerText(map, codes[pfn], owners[pfn]);
    tip.textContent = 'frame ' + pfn + (group > 1 ? '..' + (Math.min(frames, pfn + group) - 1) : '') + ' (0x' + (pfn * D.pageBytes).toString(16) + '): ' + D.categories[codes[pfn]] + (who ? ', ' + who : '');
    tip.style.left = e.clientX + 14 + 'px';
    tip.style.top = e.clientY + 12 + 'px';
    tip.hidden = false;
  });
  cv.addEventListener('mouseleave', () => { tip.hidden = true; });
  return div;
}
const maps = document.getElementById('maps');
D.maps.forEach((m, i) => maps.appendChild(drawMap(m, i)));
document.getElementById('frames-note').innerHTML = 'Each physical frame coloured by owner and type (anonymous memory by process); a map asked for at a time is drawn when the machine next stops between two steps. '
  + D.maps.length + ' map' + (D.maps.length === 1 ? '' : 's') + ' in time order. Hover a frame for its number, address and owner.'
  + D.missedMaps.map((t) => ' <span class="missed">No map at ' + msText(t) + ': the run ended at ' + msText(D.endMs) + ', before that time.</span>').join('');

// ---- tables ----
const y = D.summary.system;
function table(head, rows, swatches) {
  return '<table><tr>' + head.map((h) => '<th>' + h + '</th>').join('') + '</tr>'
    + rows.map((r, i) => '<tr>' + r.map((c, j) => '<td>' + (j === 0 && swatches ? '<i class="swatch" style="background:' + swatches[i] + '"></i>' : '') + esc(c) + '</td>').join('') + '</tr>').join('') + '</table>';
}
const description = (D.workload.match(/^description:\s*(.*)$/m) || [])[1];
document.getElementById('description').textContent = description ? description.replace(/^["']|["']$/g, '') : '';
document.getElementById('system').innerHTML = table(
  ['emulated time', 'CPU', 'TLB hit rate', 'faults (major)', 'swap in / out', 'file pages read / written', 'reclaim scans (kswapd / direct)', 'OOM kills', 'kernel'],
  [[msText(y.seconds * 1000), fmt(100 * y.cpuUtilization, 1) + '%', fmt(100 * y.tlbHitRate, 2) + '%', y.pageFaults + ' (' + y.majorFaults + ')',
    y.swapIns + ' / ' + y.swapOuts, y.fileReadPages + ' / ' + y.fileWrittenPages, y.reclaimScansKswapd + ' / ' + y.reclaimScansDirect,
    y.oomKills, y.kernelState]]);
document.getElementById('procs').innerHTML = table(
  ['pid', 'name', 'status', 'CPU cycles', 'minor faults', 'major faults', 'peak RSS (KiB)', 'swap (KiB)'],
  D.summary.processes.map((p) => [p.pid, p.name, p.status, p.cpuCycles, p.minorFaults, p.majorFaults, p.peakRssBytes / 1024, p.swapBytes / 1024]),
  D.summary.processes.map((p) => processColour(p.pid)));
// ---- managed heaps ----
if (D.gc) {
  const G = D.gc;
  chart('gc-heap', G.heap.map((h) => ({ label: processLabel(h.pid) + ' heap', values: h.values, colour: processColour(h.pid), width: 2 }))
    .concat(G.live.map((h) => ({ label: processLabel(h.pid) + ' live', values: h.values, colour: processColour(h.pid), dash: [5, 4] }))), { yLabel: 'MiB' });
  const el = document.getElementById('gc-pauses');
  const series = [{ label: 'time', value: (u, v) => (v === null ? '--' : msText(v)) }].concat(G.pauses.series.map((p) => ({
    label: processLabel(p.pid) + ' pause µs', stroke: processColour(p.pid), fill: processColour(p.pid), paths: () => null,
    points: { show: true, size: 6, fill: processColour(p.pid) }, value: (u, v) => fmt(v),
  })));
  el.dataset.points = String(G.pauses.t.length);
  el.dataset.series = String(G.pauses.series.length);
  el.dataset.nonzero = String(G.pauses.series.filter((p) => p.values.some((v) => v !== null && v > 0)).length);
  new uPlot({ width: W, height: 260, series, scales: { x: { time: false, range: () => [0, D.endMs] } }, axes: [
    { label: 'emulated time (ms)', stroke: '#333', grid: { stroke: '#eceef0' } },
    { label: 'pause (µs)', size: 64, stroke: '#333', grid: { stroke: '#eceef0' } },
  ], cursor: { drag: { x: true, y: false } } }, [G.pauses.t].concat(G.pauses.series.map((p) => p.values)), el);
  const us = (ns) => fmt(ns / 1000);
  const kib = (b) => fmt(b / 1024, 0);
  document.getElementById('gc-table').innerHTML = table(
    ['pid', 'name', 'collector', 'minor', 'major', 'pauses kept', 'total pause (µs)', 'max pause (µs)', 'p50 (µs)', 'p99 (µs)',
      'heap (KiB)', 'live (KiB)', 'objects allocated', 'freed', 'moved', 'promoted', 'barrier stores', 'barrier hits'],
    G.rows.map((r) => [r.pid, r.name, r.collector, r.minorCollections, r.majorCollections, r.pauses.count, us(r.pauseTotalNs), us(r.pauseMaxNs),
      us(r.pauses.p50Ns), us(r.pauses.p99Ns), kib(r.heapBytes), kib(r.liveBytes), r.objectsAllocated, r.objectsFreed, r.objectsMoved,
      r.objectsPromoted, r.barrierStores, r.barrierHits]),
    G.rows.map((r) => processColour(r.pid)));
}
document.getElementById('args').textContent = D.args.join(String.fromCharCode(10));
document.getElementById('log').textContent = D.summary.log.join(String.fromCharCode(10)) || '(empty)';
document.getElementById('workload').textContent = D.workload;
`;
