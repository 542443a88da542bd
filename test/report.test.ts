/**
 * The HTML report: its frame maps (every frame in one category, free frames as the buddy
 * allocator counts them, file and per-process frames where a workload has them, each map asked
 * for with --frame-map-at present with its time), its data, and the page in a real browser:
 * headless Chromium (Debian's, driven by playwright-core) opens the file offline, renders it
 * without console errors, every chart has data and every map is drawn. Where no Chromium is
 * installed the browser test says so and skips (.ci/run installs it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { bootWorkload, summarize } from '../kernel/boot/cmd-run.ts';
import { renderReport } from '../kernel/boot/report.ts';
import { type LoadedWorkload, loadWorkload } from '../kernel/boot/workload.ts';
import {
  NIL,
  PageFrames,
  PG_ALLOCATED,
  PG_ANON,
  PG_BUDDY,
  PG_FILE,
  PG_HEAD,
  PG_PAGETABLE,
  PG_PCP,
  PG_RESERVED,
  PG_SHMEM,
  PG_SLAB,
  PG_SWAPCACHE,
  PG_TAIL,
} from '../kernel/mm/page.ts';
import {
  classifyFrames,
  FC_ANON,
  FC_ANON_SWAPCACHE,
  FC_FILE,
  FC_FREE,
  FC_KERNEL,
  FC_PAGETABLE,
  FC_PCP,
  FC_SHMEM,
  FC_SLAB,
  FC_SWAPCACHE,
  FRAME_CATEGORIES,
  type FrameMap,
  Timeline,
} from '../kernel/observe/timeline.ts';
import type { Kernel } from '../kernel/proc/kernel.ts';
import type { GcReport, UserMain } from '../kernel/proc/uapi.ts';
import { bootTestMachine } from './helpers/kernel.ts';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const CLI = join(process.cwd(), 'kernel/boot/vmlab.mjs');
/** The reports and their screenshots (kept for a look after the run). */
const dir = mkdtempSync(join(tmpdir(), 'vmlab-report-'));

/** What the kernel's own counters say at one time, to compare a frame map with. */
interface Accounting {
  time: number;
  buddyFree: number;
  pcp: number;
  file: number;
  slab: number;
  pageTables: number;
  livePids: number[];
}

function accounting(k: Kernel): Accounting {
  const buddy = k.hw.buddy;
  return {
    time: k.hw.clock.now,
    buddyFree: buddy.freePages(),
    pcp: buddy.pcpPages(),
    file: k.pageCache.nrPages,
    slab: buddy.pagesOwnedBy(PG_SLAB),
    pageTables: buddy.pagesOwnedBy(PG_PAGETABLE),
    livePids: [...k.tasks.values()].filter((t) => !t.kernelThread && t.mm !== null).map((t) => t.pid),
  };
}

/**
 * Run `workload` with a timeline, frame maps at `mapTimes` (cycles) and, at each of them, the
 * kernel's counters read by an observer event scheduled just after the map's.
 */
async function runWithMaps(workload: string, sampleCycles: number, mapTimes: number[]) {
  const w = loadWorkload(workload);
  const run = await bootWorkload(w);
  const k = run.m.kernel;
  const timeline = new Timeline(k, sampleCycles);
  const counted: Accounting[] = [];
  for (const t of mapTimes) {
    timeline.frameMapAt(t);
    k.hw.clock.schedule(t, 'test accounting', () => counted.push(accounting(k)), { observer: true });
  }
  k.run();
  timeline.sample();
  const end = accounting(k);
  run.m.shutdown();
  return { run, w, k, timeline, counted, end };
}

/** The report's data block. */
function reportData(html: string) {
  return JSON.parse(html.split('<script type="application/json" id="data">')[1]!.split('</script>')[0]!);
}

/** Frames of each (category, owner) in a map's runs, after checking the runs cover every frame once. */
function runTotals(map: FrameMap): { byCategory: number[]; byOwner: Map<string, number> } {
  const byCategory = new Array<number>(FRAME_CATEGORIES.length).fill(0);
  const byOwner = new Map<string, number>();
  let frames = 0;
  for (let i = 0; i < map.runs.length; i += 3) {
    const [c, owner, n] = [map.runs[i]!, map.runs[i + 1]!, map.runs[i + 2]!];
    expect(n).toBeGreaterThan(0);
    byCategory[c]! += n;
    byOwner.set(`${c}:${owner}`, (byOwner.get(`${c}:${owner}`) ?? 0) + n);
    frames += n;
  }
  expect(frames).toBe(map.frameCount);
  return { byCategory, byOwner };
}

/** A map's counts against the kernel's counters read at the same time. */
function expectMapMatches(map: FrameMap, a: Accounting): void {
  expect(map.time).toBe(a.time);
  const { byCategory } = runTotals(map);
  expect(byCategory).toEqual(map.counts);
  expect(map.counts[FC_FREE]).toBe(a.buddyFree);
  expect(map.counts[FC_PCP]).toBe(a.pcp);
  expect(map.counts[FC_FILE]).toBe(a.file);
  expect(map.counts[FC_SLAB]).toBe(a.slab);
  expect(map.counts[FC_PAGETABLE]).toBe(a.pageTables);
  expect(map.processes.map((p) => p.pid).sort((x, y) => x - y)).toEqual(a.livePids.sort((x, y) => x - y));
}

describe('frame classification', () => {
  it('a free buddy block is free in all its frames, and every owner flag has its category', () => {
    const pages = new PageFrames(64);
    pages.set(0, PG_BUDDY);
    pages.order[0] = 4; // frames 0..15
    pages.set(16, PG_RESERVED);
    pages.set(17, PG_ALLOCATED);
    pages.set(18, PG_SLAB | PG_HEAD);
    pages.set(19, PG_SLAB | PG_TAIL);
    pages.compoundHead[19] = 18;
    pages.set(20, PG_PAGETABLE);
    pages.set(21, PG_ANON);
    pages.set(22, PG_ANON | PG_SWAPCACHE);
    pages.mapcount[22] = 1;
    pages.set(23, PG_ANON | PG_SWAPCACHE);
    pages.set(24, PG_ANON | PG_SHMEM);
    pages.set(25, PG_FILE);
    pages.set(26, PG_PCP);
    // 27..31: no flags and no free block around them (should not happen): kernel.
    pages.set(32, PG_BUDDY);
    pages.order[32] = 5; // frames 32..63
    const codes = new Uint8Array(64).fill(255);
    classifyFrames(pages, codes);
    expect([...codes.subarray(0, 16)]).toEqual(new Array(16).fill(FC_FREE));
    expect([...codes.subarray(16, 27)]).toEqual([
      FC_KERNEL,
      FC_KERNEL,
      FC_SLAB,
      FC_SLAB,
      FC_PAGETABLE,
      FC_ANON,
      FC_ANON_SWAPCACHE,
      FC_SWAPCACHE,
      FC_SHMEM,
      FC_FILE,
      FC_PCP,
    ]);
    expect([...codes.subarray(27, 32)]).toEqual(new Array(5).fill(FC_KERNEL));
    expect([...codes.subarray(32)]).toEqual(new Array(32).fill(FC_FREE));
  });

  it('a free block whose order runs past the last frame stops at the last frame', () => {
    const pages = new PageFrames(40);
    pages.set(0, PG_ALLOCATED);
    pages.set(32, PG_BUDDY);
    pages.order[32] = 5;
    const codes = new Uint8Array(40);
    classifyFrames(pages, codes);
    expect(codes[0]).toBe(FC_KERNEL);
    expect([...codes.subarray(32)]).toEqual(new Array(8).fill(FC_FREE));
    expect(pages.owner[0]).toBe(NIL);
  });
});

describe('frame maps of a run', () => {
  it('count free frames as the buddy allocator does, and the rest as the kernel counts them', async () => {
    const { timeline, counted, k, end } = await runWithMaps(
      'userland/workloads/demand-paging.yaml',
      500_000,
      [1_000_000, 2_000_000, 4_000_000],
    );
    expect(timeline.chosenMaps).toHaveLength(3);
    expect(timeline.chosenMaps.map((m) => m.askedTime)).toEqual([1_000_000, 2_000_000, 4_000_000]);
    timeline.chosenMaps.forEach((map, i) => {
      expect(map.time).toBeGreaterThanOrEqual(map.askedTime!);
      expectMapMatches(map, counted[i]!);
    });
    // While the programs run, anonymous frames belong to live processes.
    const during = timeline.chosenMaps[1]!;
    const anonOwners = new Set<number>();
    for (let i = 0; i < during.runs.length; i += 3)
      if (during.runs[i] === FC_ANON) anonOwners.add(during.runs[i + 1]!);
    expect(anonOwners.size).toBeGreaterThan(0);
    for (const pid of anonOwners) expect(during.processes.map((p) => p.pid)).toContain(pid);
    const { takeFrameMap } = await import('../kernel/observe/timeline.ts');
    expectMapMatches(takeFrameMap(k, 'end'), end);
  });

  it('show the page cache: file frames, owned by their inodes, for a workload with files', async () => {
    const { timeline, counted } = await runWithMaps(
      'userland/workloads/shared-file.yaml',
      500_000,
      [3_000_000],
    );
    const map = timeline.chosenMaps[0]!;
    expectMapMatches(map, counted[0]!);
    expect(map.counts[FC_FILE]).toBeGreaterThan(128); // the 1 MiB file is being filled and read
    const shared = map.files.find((f) => f.path === '/shared.bin');
    expect(shared).toBeDefined();
    expect(runTotals(map).byOwner.get(`${FC_FILE}:${shared!.ino}`)).toBeGreaterThan(128);
  });

  it('keep the sample with the most memory in use, anonymous frames of each process apart', async () => {
    const { timeline } = await runWithMaps('userland/workloads/thrashing.yaml', 1_000_000, []);
    const peak = timeline.peakMap!;
    const fewestFree = Math.min(...timeline.samples.map((s) => s.freePages + s.pcpPages));
    expect(peak.counts[FC_FREE]! + peak.counts[FC_PCP]!).toBe(fewestFree);
    const owners = [...runTotals(peak).byOwner.keys()]
      .filter((key) => key.startsWith(`${FC_ANON}:`))
      .map((key) => Number(key.split(':')[1]));
    expect(owners.length).toBeGreaterThanOrEqual(10); // 12 workers share the machine
    for (const pid of owners) expect(peak.processes.map((p) => p.pid)).toContain(pid);
  });

  it('change nothing: a run with frame maps asked for ends as one without', async () => {
    const plain = async (maps: boolean) => {
      const w = loadWorkload('userland/workloads/shared-file.yaml');
      const run = await bootWorkload(w);
      if (maps) {
        const timeline = new Timeline(run.m.kernel, 100_000);
        for (const t of [1_000_000, 2_500_000, 7_000_000]) timeline.frameMapAt(t);
      }
      run.m.kernel.run();
      run.m.shutdown();
      return summarize(run.m, w);
    };
    expect(await plain(true)).toEqual(await plain(false));
  });
});

/** Reports the remaining tests read: one through the CLI, one rendered in-process. */
const reports = { sharedFile: '', thrashing: '' };

beforeAll(async () => {
  reports.sharedFile = join(dir, 'shared-file.html');
  const r = spawnSync(
    'node',
    [
      CLI,
      'run',
      'userland/workloads/shared-file.yaml',
      '--report',
      reports.sharedFile,
      '--sample-interval',
      '200us',
      '--frame-map-at',
      '1ms,3ms',
      '500ms',
    ],
    { encoding: 'utf8' },
  );
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const { run, w, timeline, k } = await runWithMaps(
    'userland/workloads/thrashing.yaml',
    5_000_000,
    [5_000_000],
  );
  reports.thrashing = join(dir, 'thrashing.html');
  writeFileSync(
    reports.thrashing,
    renderReport({
      title: 'test report',
      workloadText: 'processes: []',
      args: run.args,
      summary: summarize(run.m, w),
      timeline,
      kernel: k,
    }),
  );
}, 120_000);

describe('the HTML report', () => {
  it('is one self-contained file: the chart library and the data are inlined', () => {
    const html = readFileSync(reports.thrashing, 'utf8');
    expect(html).toContain('<script type="application/json" id="data">');
    expect(html).not.toMatch(/<script[^>]+src=/);
    expect(html).not.toMatch(/<link[^>]+href=/);
    const data = reportData(html);
    expect(data.t.length).toBeGreaterThan(10);
    expect(Math.max(...data.rates.majorFaults)).toBeGreaterThan(0);
    expect(Math.max(...data.memory.swapUsed)).toBeGreaterThan(0);
    // The chosen map, the peak and the end, each of all 8192 frames.
    expect(data.maps.map((m: { reasons: string[] }) => m.reasons)).toEqual([['chosen'], ['peak'], ['end']]);
    for (const m of data.maps) expect(m.counts.reduce((a: number, b: number) => a + b, 0)).toBe(8192);
  });

  it('has each map asked for with --frame-map-at with its time, says which the run never reached', () => {
    const data = reportData(readFileSync(reports.sharedFile, 'utf8'));
    const chosen = data.maps.filter((m: { reasons: string[] }) => m.reasons.includes('chosen'));
    expect(chosen.map((m: { askedTimes: number[] }) => m.askedTimes)).toEqual([[1], [3]]);
    for (const m of chosen) {
      expect(m.time).toBeGreaterThanOrEqual(m.askedTimes[0]);
      expect(m.time).toBeLessThan(m.askedTimes[0] + 0.1);
    }
    expect(data.missedMaps).toEqual([500]);
    const last = data.maps.at(-1);
    expect(last.reasons).toContain('end');
    expect(last.time).toBeCloseTo(data.endMs, 9);
    expect(last.processes).toEqual([]); // every process has exited
    expect(last.counts[FC_FILE]).toBeGreaterThan(256); // the page cache outlives them
    expect(Math.max(...data.memory.file)).toBeGreaterThan(1);
    expect(Math.max(...data.memory.dirty)).toBeGreaterThan(0);
    expect(Math.max(...data.files.read)).toBeGreaterThan(0);
    expect(Math.max(...data.files.written)).toBeGreaterThan(0);
  });

  it('refuses --frame-map-at without a time or without --report', () => {
    const run = (...args: string[]) =>
      spawnSync('node', [CLI, 'run', 'userland/workloads/demand-paging.yaml', ...args], { encoding: 'utf8' });
    const noTime = run('--report', join(dir, 'x.html'), '--frame-map-at', 'soon');
    expect(noTime.status).toBe(2);
    expect(noTime.stderr).toMatch(/--frame-map-at: 'soon' is not a time/);
    const noReport = run('--frame-map-at', '1ms');
    expect(noReport.status).toBe(2);
    expect(noReport.stderr).toMatch(/--frame-map-at: .*--report/);
  });

  it.skipIf(CHROMIUM === undefined)(
    'renders in headless Chromium without console errors, every chart with data, every map drawn',
    async () => {
      const { chromium } = await import('playwright-core');
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      try {
        for (const [name, path] of Object.entries(reports)) {
          const page = await browser.newPage({ viewport: { width: 1240, height: 900 } });
          const errors: string[] = [];
          page.on('console', (m) => {
            if (m.type() === 'error') errors.push(m.text());
          });
          page.on('pageerror', (e) => errors.push(String(e)));
          await page.goto(pathToFileURL(path).href);
          await page.waitForSelector('#c-cpu .u-over');
          const charts = await page.$$eval('[id^="c-"]', (els) =>
            els.map((e) => {
              const d = (e as unknown as { dataset: Record<string, string> }).dataset;
              return {
                id: e.id,
                points: Number(d.points),
                nonzero: Number(d.nonzero),
                canvases: e.querySelectorAll('canvas').length,
              };
            }),
          );
          expect(charts.map((c) => c.id)).toEqual(['c-memory', 'c-rates', 'c-files', 'c-rss', 'c-cpu']);
          for (const c of charts) {
            expect(c.points, `${name} ${c.id}`).toBeGreaterThan(10);
            expect(c.nonzero, `${name} ${c.id}`).toBeGreaterThan(0);
            expect(c.canvases, `${name} ${c.id}`).toBeGreaterThan(0);
          }
          const data = reportData(readFileSync(path, 'utf8'));
          const maps = await page.$$eval('.map', (els) =>
            els.map((e) => {
              const d = (e as unknown as { dataset: Record<string, string> }).dataset;
              const canvas = e.querySelector('canvas') as unknown as { dataset: Record<string, string> };
              return {
                time: Number(d.time),
                heading: e.querySelector('h3')?.textContent ?? '',
                frames: Number(canvas.dataset.frames),
                legend: [...e.querySelectorAll('.legend span')].map((s) => {
                  const ds = (s as unknown as { dataset: Record<string, string> }).dataset;
                  return {
                    category: ds.category!,
                    frames: Number(ds.frames),
                    colour: ds.colour!,
                    pid: ds.pid,
                  };
                }),
              };
            }),
          );
          expect(maps).toHaveLength(data.maps.length);
          maps.forEach((m, i) => {
            const want = data.maps[i];
            expect(m.time).toBe(want.time);
            expect(m.heading).toContain(`${want.time.toFixed(3)} ms`);
            expect(m.frames).toBe(want.frameCount);
            expect(m.legend.find((l) => l.category === 'free')!.frames).toBe(want.counts[FC_FREE]);
            expect(m.legend.find((l) => l.category === 'file')!.frames).toBe(want.counts[FC_FILE]);
            // One legend entry and one colour per process with anonymous frames.
            const perProcess = m.legend.filter((l) => l.pid !== undefined);
            expect(new Set(perProcess.map((l) => l.colour)).size).toBe(perProcess.length);
            const anon = want.counts[FC_ANON] + want.counts[FC_ANON_SWAPCACHE];
            expect(perProcess.reduce((n, l) => n + l.frames, 0)).toBe(anon);
          });
          if (name === 'thrashing')
            expect(
              maps.find((m) => m.heading.includes('most memory'))!.legend.filter((l) => l.pid).length,
            ).toBe(12);
          expect(await page.$$eval('#procs tr', (rows) => rows.length)).toBe(
            data.summary.processes.length + 1,
          );
          const png = join(dir, `${name}.png`);
          await page.screenshot({ path: png, fullPage: true });
          expect(existsSync(png)).toBe(true);
          expect(errors).toEqual([]);
          await page.close();
        }
      } finally {
        await browser.close();
      }
    },
  );

  it.runIf(CHROMIUM === undefined)(
    'needs Chromium for the browser check (not installed here: skipped)',
    () => {
      expect(CHROMIUM).toBeUndefined();
    },
  );
});

describe('the managed-heap section', () => {
  /** A process that publishes a managed heap's report every millisecond: 20 collections, the heap growing. */
  const publisher: UserMain = function* ({ sys }) {
    for (let i = 0; i <= 20; i++) {
      const report: GcReport = {
        collector: 'handmade',
        heapBytes: (4 + i) << 20,
        liveBytes: (2 + i / 2) * (1 << 20),
        nextGcBytes: (8 + i) << 20,
        minorCollections: i - Math.floor(i / 4),
        majorCollections: Math.floor(i / 4),
        pauseTotalNs: (i * (i + 1) * 1000) / 2,
        pauseMaxNs: i * 1000,
        lastPauseNs: i * 1000,
        objectsAllocated: 1000 * i,
        bytesAllocated: 64000 * i,
        objectsFreed: 900 * i,
        bytesFreed: 57600 * i,
        objectsMoved: 10 * i,
        bytesMoved: 640 * i,
        objectsPromoted: 5 * i,
        bytesMarked: 1 << 20,
        markNs: 500 * i,
        barrierStores: 100 * i,
        barrierHits: 3 * i,
      };
      sys.vmlab_gc_report(report);
      yield* sys.nanosleep(1_000_000);
    }
    return 0;
  };

  it.skipIf(CHROMIUM === undefined)(
    'draws the heap and live bytes, every pause and a row per heap in headless Chromium',
    async () => {
      const m = bootTestMachine({ memoryMiB: 16 });
      const timeline = new Timeline(m.kernel, 500_000);
      const task = m.start(publisher, { name: 'publisher' });
      m.runToEnd();
      timeline.sample();
      const path = join(dir, 'gc.html');
      const summary = summarize(m, { path: 'gc', dir: '.', workload: {} } as unknown as LoadedWorkload);
      writeFileSync(
        path,
        renderReport({
          title: 'gc report',
          workloadText: 'processes: []',
          args: [],
          summary,
          timeline,
          kernel: m.kernel,
        }),
      );
      const { chromium } = await import('playwright-core');
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--no-first-run',
          '--disable-background-networking',
        ],
      });
      try {
        const page = await browser.newPage({ viewport: { width: 1240, height: 900 } });
        const errors: string[] = [];
        page.on('console', (msg) => {
          if (msg.type() === 'error') errors.push(msg.text());
        });
        page.on('pageerror', (e) => errors.push(String(e)));
        await page.goto(pathToFileURL(path).href);
        await page.waitForSelector('#gc-pauses .u-over');
        const charts = await page.$$eval('[id^="gc-"][class="chart"]', (els) =>
          els.map((e) => {
            const d = (e as unknown as { dataset: Record<string, string> }).dataset;
            return {
              id: e.id,
              points: Number(d.points),
              series: Number(d.series),
              nonzero: Number(d.nonzero),
              canvases: e.querySelectorAll('canvas').length,
            };
          }),
        );
        expect(charts.map((c) => c.id)).toEqual(['gc-heap', 'gc-pauses']);
        const [heap, pauses] = charts;
        expect(heap!.points).toBe(timeline.samples.length);
        expect(heap!.series).toBe(2); // heap and live of the one process
        expect(heap!.nonzero).toBe(2);
        // The first report follows no pause; the other 20 do.
        expect(pauses!.points).toBe(20);
        expect(pauses!.nonzero).toBe(1);
        for (const c of charts) expect(c.canvases, c.id).toBeGreaterThan(0);
        const rows = await page.$$eval('#gc-table tr', (trs) =>
          trs.map((tr) => [...tr.querySelectorAll('td,th')].map((c) => c.textContent ?? '')),
        );
        expect(rows).toHaveLength(2);
        expect(rows[0]!.slice(0, 3)).toEqual(['pid', 'name', 'collector']);
        expect(rows[1]!.slice(0, 6)).toEqual([String(task.pid), 'publisher', 'handmade', '15', '5', '20']);
        expect(errors).toEqual([]);
        await page.screenshot({ path: join(dir, 'gc.png'), fullPage: true });
        await page.close();
      } finally {
        await browser.close();
      }
    },
  );

  it('leaves the section out of a report whose processes had no managed heap', () => {
    expect(readFileSync(reports.thrashing, 'utf8')).not.toContain('id="gc-heap"');
    expect(reportData(readFileSync(reports.thrashing, 'utf8')).gc).toBeNull();
  });
});
