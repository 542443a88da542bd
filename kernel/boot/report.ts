/**
 * The HTML report of a run: one self-contained file (uPlot and its CSS inlined, the data as a
 * JSON block) that works offline from file://. Charts: memory composition, fault and swap rates,
 * per-process RSS, CPU utilization and TLB hit rate over emulated time; a physical frame map
 * (each frame coloured by owner: free, kernel, slab, page table, anonymous memory of each process,
 * shared memory, swap cache); per-process and system tables; the workload.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import {
  PG_ANON,
  PG_BUDDY,
  PG_PAGETABLE,
  PG_PCP,
  PG_RESERVED,
  PG_SHMEM,
  PG_SLAB,
  PG_SWAPCACHE,
} from '../mm/page.ts';
import type { Timeline } from '../observe/timeline.ts';
import type { Kernel } from '../proc/kernel.ts';
import type { RunSummary } from './cmd-run.ts';

/** Frame-map codes: 0 free, 1 reserved/kernel, 2 slab, 3 page table, 4 shared memory, 5 swap cache, 6+ anonymous of process (pid mapped to a colour index). */
export function frameMap(kernel: Kernel): { codes: number[]; owners: number[] } {
  const pages = kernel.hw.pages;
  const codes: number[] = new Array(pages.count);
  const owners: number[] = [];
  for (let pfn = 0; pfn < pages.count; pfn++) {
    const f = pages.flags[pfn]!;
    let c: number;
    if (f & (PG_BUDDY | PG_PCP)) c = 0;
    else if (f & PG_SLAB) c = 2;
    else if (f & PG_PAGETABLE) c = 3;
    else if (f & PG_ANON) {
      if (f & PG_SHMEM) c = 4;
      else if (f & PG_SWAPCACHE) c = 5;
      else {
        const pid = pages.owner[pfn]!;
        let i = owners.indexOf(pid);
        if (i < 0) i = owners.push(pid) - 1;
        c = 6 + i;
      }
    } else if (f & PG_RESERVED) c = 1;
    else c = 1; // allocated kernel memory (PG_ALLOCATED) or untyped
    codes[pfn] = c;
  }
  return { codes, owners };
}

export interface ReportInput {
  title: string;
  workloadText: string;
  args: string[];
  summary: RunSummary;
  timeline: Timeline;
  kernel: Kernel;
}

/** The report as one HTML string. */
export function renderReport(input: ReportInput): string {
  const require = createRequire(import.meta.url);
  const dist = require.resolve('uplot/dist/uPlot.iife.min.js');
  const uplotJs = readFileSync(dist, 'utf8');
  const uplotCss = readFileSync(dist.replace('uPlot.iife.min.js', 'uPlot.min.css'), 'utf8');
  const { kernel, timeline, summary } = input;
  const hz = kernel.hw.clock.hz;
  const pageMiB = kernel.hw.format.pageBytes / (1024 * 1024);
  const s = timeline.samples;
  const pids = [...new Set(s.flatMap((x) => Object.keys(x.rss).map(Number)))].sort((a, b) => a - b);
  const names = new Map(summary.processes.map((p) => [p.pid, p.name]));
  const map = frameMap(kernel);
  const data = {
    t: s.map((x) => x.time / hz),
    memory: {
      free: s.map((x) => x.freePages * pageMiB),
      anon: s.map((x) => x.anonPages * pageMiB),
      shmem: s.map((x) => x.shmemPages * pageMiB),
      slab: s.map((x) => x.slabPages * pageMiB),
      pageTables: s.map((x) => x.pageTablePages * pageMiB),
      swapUsed: s.map((x) => x.swapUsedPages * pageMiB),
    },
    rates: {
      faults: s.map((x) => x.faultsPerSecond),
      majorFaults: s.map((x) => x.majorFaultsPerSecond),
      swapIn: s.map((x) => x.swapInPerSecond),
      swapOut: s.map((x) => x.swapOutPerSecond),
    },
    cpu: s.map((x) => 100 * x.cpuUtilization),
    tlb: s.map((x) => 100 * x.tlbHitRate),
    runQueue: s.map((x) => x.runQueue),
    rss: pids.map((pid) => ({
      label: `${names.get(pid) ?? 'pid'} [${pid}]`,
      values: s.map((x) => (x.rss[pid] ?? 0) * pageMiB),
    })),
    frames: {
      codes: map.codes,
      owners: map.owners.map((pid) => `${names.get(pid) ?? 'pid'} [${pid}]`),
      columns: 128,
    },
    summary,
    args: input.args,
    workload: input.workloadText,
  };
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(input.title)}</title>
<style>${uplotCss}
body{font:14px system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}pre{background:#f7f7f7;padding:8px;overflow:auto}
.legend span{display:inline-block;margin-right:12px}.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
</style></head><body>
<h1>${escapeHtml(input.title)}</h1>
<div id="system"></div>
<h2>Memory composition (MiB)</h2><div id="c-memory"></div>
<h2>Fault and swap rates (per emulated second)</h2><div id="c-rates"></div>
<h2>Resident set of each process (MiB)</h2><div id="c-rss"></div>
<h2>CPU utilization and TLB hit rate (%)</h2><div id="c-cpu"></div>
<h2>Physical frames at the end of the run</h2><div class="legend" id="legend"></div><canvas id="frames"></canvas>
<h2>Processes</h2><div id="procs"></div>
<h2>Kernel log</h2><pre id="log"></pre>
<h2>Workload</h2><pre id="workload"></pre>
<script type="application/json" id="data">${json}</script>
<script>${uplotJs}</script>
<script>
const D = JSON.parse(document.getElementById('data').textContent);
const W = Math.min(1000, document.body.clientWidth - 40);
const palette = ['#4e79a7','#f28e2b','#e15759','#76b7b2','#59a14f','#edc948','#b07aa1','#ff9da7','#9c755f','#bab0ac'];
function chart(id, series) {
  const opts = {
    width: W, height: 260,
    scales: { x: { time: false } },
    series: [{ label: 'emulated time (s)' }].concat(series.map((s, i) => ({ label: s.label, stroke: palette[i % palette.length], width: 1.5 }))),
    axes: [{ label: 'emulated time (s)' }, { size: 80 }],
  };
  const el = document.getElementById(id);
  el.dataset.points = String(D.t.length);
  el.dataset.series = String(series.length);
  return new uPlot(opts, [D.t].concat(series.map((s) => s.values)), el);
}
chart('c-memory', [
  { label: 'free', values: D.memory.free }, { label: 'anonymous', values: D.memory.anon },
  { label: 'shared', values: D.memory.shmem }, { label: 'slab', values: D.memory.slab },
  { label: 'page tables', values: D.memory.pageTables }, { label: 'swap used', values: D.memory.swapUsed }]);
chart('c-rates', [
  { label: 'faults', values: D.rates.faults }, { label: 'major faults', values: D.rates.majorFaults },
  { label: 'swap in', values: D.rates.swapIn }, { label: 'swap out', values: D.rates.swapOut }]);
chart('c-rss', D.rss.length > 0 ? D.rss : [{ label: 'none', values: D.t.map(() => 0) }]);
chart('c-cpu', [{ label: 'CPU utilization', values: D.cpu }, { label: 'TLB hit rate', values: D.tlb }, { label: 'run queue', values: D.runQueue }]);
const fixed = [['free','#e8e8e8'],['kernel','#555555'],['slab','#8c564b'],['page table','#d62728'],['shared memory','#17becf'],['swap cache','#bcbd22']];
const colours = fixed.map((f) => f[1]).concat(D.frames.owners.map((_, i) => palette[i % palette.length]));
const names = fixed.map((f) => f[0]).concat(D.frames.owners.map((o) => 'anonymous: ' + o));
document.getElementById('legend').innerHTML = names.map((n, i) => '<span><i style="background:' + colours[i] + '"></i>' + n + '</span>').join('');
const cv = document.getElementById('frames');
const cols = D.frames.columns, cell = 6, rows = Math.ceil(D.frames.codes.length / cols);
cv.width = cols * cell; cv.height = Math.min(rows * cell, 30000);
const ctx = cv.getContext('2d');
D.frames.codes.forEach((c, i) => { ctx.fillStyle = colours[c]; ctx.fillRect((i % cols) * cell, Math.floor(i / cols) * cell, cell - 1, cell - 1); });
cv.dataset.frames = String(D.frames.codes.length);
const y = D.summary.system;
document.getElementById('system').innerHTML = '<table><tr><th>emulated time</th><th>CPU</th><th>TLB hit rate</th><th>faults (major)</th><th>swap in / out</th><th>OOM kills</th><th>kernel</th></tr><tr><td>'
  + (y.seconds * 1000).toFixed(3) + ' ms</td><td>' + (100 * y.cpuUtilization).toFixed(1) + '%</td><td>' + (100 * y.tlbHitRate).toFixed(2) + '%</td><td>'
  + y.pageFaults + ' (' + y.majorFaults + ')</td><td>' + y.swapIns + ' / ' + y.swapOuts + '</td><td>' + y.oomKills + '</td><td>' + y.kernelState + '</td></tr></table>'
  + '<pre>' + D.args.join('\\n').replace(/</g, '&lt;') + '</pre>';
document.getElementById('procs').innerHTML = '<table><tr><th>pid</th><th>name</th><th>status</th><th>CPU cycles</th><th>minor faults</th><th>major faults</th><th>peak RSS (KiB)</th><th>swap (KiB)</th></tr>'
  + D.summary.processes.map((p) => '<tr><td>' + p.pid + '</td><td>' + p.name + '</td><td>' + p.status + '</td><td>' + p.cpuCycles + '</td><td>' + p.minorFaults + '</td><td>' + p.majorFaults + '</td><td>' + (p.peakRssBytes / 1024) + '</td><td>' + (p.swapBytes / 1024) + '</td></tr>').join('') + '</table>';
document.getElementById('log').textContent = D.summary.log.join('\\n') || '(empty)';
document.getElementById('workload').textContent = D.workload;
</script></body></html>
`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
