import { describe, expect, it } from 'vitest';
import { bootWorkload, summarize } from '../kernel/boot/cmd-run.ts';
import { loadWorkload } from '../kernel/boot/workload.ts';
import { COLLECTOR_NAMES } from '../userland/gc/collectors.ts';

async function runWorkload(name: string) {
  const w = loadWorkload(`userland/workloads/${name}.yaml`);
  const run = await bootWorkload(w);
  run.m.kernel.run();
  run.m.shutdown();
  const s = summarize(run.m, w);
  const byName = (n: string) => s.processes.filter((p) => p.name === n);
  return { s, byName, kernel: run.m.kernel };
}

describe('example workloads produce the observations their comments promise', () => {
  it('default: demand paging, copy-on-write and swapping, every process exits 0', async () => {
    const { s, byName } = await runWorkload('default');
    expect(s.system.kernelState).toBe('halted');
    for (const p of s.processes) expect(p.status).toBe('exited 0');
    expect(byName('writer')[0]!.minorFaults).toBe(2048);
    expect(byName('writer')[0]!.majorFaults).toBe(1); // its text page, read from its program file
    expect(s.system.cowFaults).toBeGreaterThan(0);
    expect(s.system.swapOuts).toBeGreaterThan(0);
    expect(byName('hog')[0]!.majorFaults).toBeGreaterThan(0);
    expect(byName('hog')[0]!.stdout).toContain('40 MiB written and verified');
    expect(s.system.tlbHitRate).toBeGreaterThan(0.8);
  });

  it('demand-paging: only touched pages fault and count in RSS', async () => {
    const { byName } = await runWorkload('demand-paging');
    // Each also faults its one text page in from its program file (a major fault).
    expect(byName('sparse')[0]).toMatchObject({
      minorFaults: 1024,
      majorFaults: 1,
      peakRssBytes: 4 * 1024 * 1024 + 4096,
    });
    expect(byName('dense')[0]).toMatchObject({
      minorFaults: 4096,
      majorFaults: 1,
      peakRssBytes: 16 * 1024 * 1024 + 4096,
    });
  });

  it('cow: 256 copy-on-write faults; parent and child see their own data', async () => {
    const { s } = await runWorkload('cow');
    expect(s.system.cowFaults).toBe(256);
    expect(s.processes).toHaveLength(2);
    for (const p of s.processes) expect(p.status).toBe('exited 0');
    expect(s.processes[1]!.minorFaults).toBe(256);
  });

  it('oom: the leaky server is killed, the protected database and the worker finish', async () => {
    const { s, byName } = await runWorkload('oom');
    expect(s.system.oomKills).toBe(1);
    expect(byName('leaky')[0]!.status).toBe('killed by SIGKILL');
    expect(byName('database')[0]!.status).toBe('exited 0');
    expect(byName('worker')[0]!.status).toBe('exited 0');
    expect(
      s.log.some((l) =>
        /Out of memory: Killed process \d+ \(leaky\) total-vm:\d+kB, anon-rss:\d+kB, file-rss:\d+kB/.test(l),
      ),
    ).toBe(true);
  });

  it('thrashing: heavy swap traffic and a mostly idle CPU', async () => {
    const { s } = await runWorkload('thrashing');
    expect(s.processes).toHaveLength(12);
    for (const p of s.processes) expect(p.status).toBe('exited 0');
    expect(s.system.majorFaults).toBeGreaterThan(2000);
    expect(s.system.cpuUtilization).toBeLessThan(0.2);
    // The comparison its comment suggests: 5 replicas fit, so almost no major faults, CPU busy.
    const w = loadWorkload('userland/workloads/thrashing.yaml');
    w.workload.processes[0]!.replicas = 5;
    const run = await bootWorkload(w);
    run.m.kernel.run();
    run.m.shutdown();
    const fits = summarize(run.m, w);
    expect(fits.system.majorFaults).toBeLessThan(10);
    expect(fits.system.cpuUtilization).toBeGreaterThan(0.9);
  });

  it('shared-file: the reader sees the writer’s stores through the page cache; the folder is untouched', async () => {
    const { existsSync } = await import('node:fs');
    const { s, byName } = await runWorkload('shared-file');
    for (const p of s.processes) expect(p.status).toBe('exited 0');
    const reader = byName('reader')[0]!;
    expect(reader.stdout).toContain('1 MiB verified');
    expect(reader.majorFaults).toBe(1); // its text page; the 256 file pages were cached
    expect(reader.minorFaults).toBeGreaterThanOrEqual(256);
    expect(s.system.fileWrittenPages).toBe(256);
    expect(byName('catter')[0]!.stdout).toContain('Welcome to vmlab.');
    expect(existsSync('userland/workloads/files/shared.bin')).toBe(false);
  });

  it('policies: opt is best, lru keeps the hot set, fifo loses it; every run exits 0', async () => {
    const { workloadPolicies } = await import('../kernel/boot/cmd-run.ts');
    const w = loadWorkload('userland/workloads/policies.yaml');
    const faults: Record<string, number> = {};
    for (const policy of workloadPolicies(w)) {
      const run = await bootWorkload(w, { policy });
      run.m.kernel.run();
      run.m.shutdown();
      const s = summarize(run.m, w);
      for (const p of s.processes) expect(p.status).toBe('exited 0');
      faults[policy] = s.system.pageFaults;
    }
    expect(faults.lru).toBe(720 + 404); // every loop reference, then the cold pages and the hot set once
    for (const p of ['fifo', 'clock', 'lru', 'lru-2list']) expect(faults.opt).toBeLessThan(faults[p]!);
    expect(faults.fifo).toBeGreaterThan(faults.lru!);
  });

  it('malloc: the same program under ptmalloc and sizeclass, each with its leak report', async () => {
    const { byName } = await runWorkload('malloc');
    const pt = byName('ptmalloc')[0]!;
    const sc = byName('sizeclass')[0]!;
    for (const p of [pt, sc]) {
      expect(p.status).toBe('exited 0');
      expect(p.stdout).toMatch(/definitely lost: [\d,]+ bytes in 1999 blocks/);
      expect(p.stdout).toMatch(/still reachable: [\d,]+ bytes in 1 blocks/);
    }
    expect(pt.stdout).toContain('definitely lost: 1999000 bytes');
    expect(sc.peakRssBytes).toBeGreaterThan(pt.peakRssBytes);
  });

  it('is deterministic: the same workload gives the same summary', async () => {
    const a = await runWorkload('cow');
    const b = await runWorkload('cow');
    expect(a.s).toEqual(b.s);
  });
});

describe('managed-heap workloads (small variants of each)', () => {
  /** Run workload `name` with every process's args replaced by `args`; the summary. */
  async function runWith(name: string, args: Array<string | number>) {
    const w = loadWorkload(`userland/workloads/${name}.yaml`);
    for (const p of w.workload.processes) p.args = args;
    const run = await bootWorkload(w);
    run.m.kernel.run();
    run.m.shutdown();
    const s = summarize(run.m, w);
    return { s, byName: (n: string) => s.processes.find((p) => p.name === n)! };
  }

  /** A process of a workload whose collector is not registered ends at once, saying so. */
  const expectUnknownCollector = (p: { status: string; stderr: string }) => {
    expect(p.status).toBe('exited 2');
    expect(p.stderr).toMatch(/unknown collector/);
  };

  it('gc-compare: binarytrees gives the same lines under every collector, each named in its report', async () => {
    const { s } = await runWith('gc-compare', [6]);
    expect(s.processes.map((p) => p.name)).toEqual(['marksweep', 'markcompact', 'generational', 'refcount']);
    for (const p of s.processes) {
      if (!COLLECTOR_NAMES.includes(p.name)) {
        expectUnknownCollector(p);
        continue;
      }
      expect(p.status, `${p.name}: ${p.stderr}`).toBe('exited 0');
      expect(p.stdout.trimEnd().split('\n').at(-1)).toBe('long lived tree of depth 6\t check: 127');
      expect(p.gc!.collector).toBe(p.name);
      expect(p.gc!.objectsAllocated).toBe(255 + 127 + 64 * 31 + 16 * 127);
    }
  });

  it('gc-cycles: refcount alone keeps every cycle; its cycle detector and marksweep free them', async () => {
    const { byName } = await runWith('gc-cycles', [300]);
    const live = (n: string) => Number(/live (\d+) bytes/.exec(byName(n).stdout)![1]);
    let objects = 0;
    for (let i = 0; i < 300; i++) objects += i % 2 === 0 ? 2 : 3 + ((i >> 1) % 6);
    for (const n of ['refcount-leaky', 'refcount', 'marksweep']) {
      const collector = n === 'marksweep' ? 'marksweep' : 'refcount';
      if (!COLLECTOR_NAMES.includes(collector)) {
        expectUnknownCollector(byName(n));
        continue;
      }
      expect(byName(n).status, n).toBe('exited 0');
      if (n === 'refcount-leaky') {
        expect(live(n)).toBeGreaterThanOrEqual(objects * 64);
        expect(byName(n).gc!.objectsFreed).toBe(0);
      } else {
        expect(live(n)).toBe(0);
        expect(byName(n).gc!.objectsFreed).toBe(objects);
      }
    }
  });

  it('gc-pressure: the full-heap collector takes many more swap-ins than the generational one', async () => {
    const w = loadWorkload('userland/workloads/gc-pressure.yaml');
    for (const p of w.workload.processes) p.args = [30000, 20000, 500];
    for (const g of Object.values(w.workload.groups)) g.limit = 2 * 1024 * 1024;
    const run = await bootWorkload(w);
    run.m.kernel.run();
    run.m.shutdown();
    const s = summarize(run.m, w);
    const full = s.processes.find((p) => p.name === 'marksweep')!;
    const young = s.processes.find((p) => p.name === 'generational')!;
    for (const p of [full, young]) expect(p.status, `${p.name}: ${p.stderr}`).toBe('exited 0');
    for (const p of [full, young])
      expect(p.stdout).toMatch(/^gccache: 30000 entries, 20000 ops: \d+ values and \d+ entries replaced/);
    expect(full.gc!.majorCollections).toBeGreaterThan(0);
    expect(young.gc!.minorCollections).toBeGreaterThan(young.gc!.majorCollections);
    expect(full.majorFaults).toBeGreaterThan(3 * young.majorFaults);
    expect(s.system.swapIns).toBeGreaterThan(0);
  });
});

/** Example workloads the tests above run and check one by one. */
const RUN_ABOVE = new Set([
  'default.yaml',
  'demand-paging.yaml',
  'cow.yaml',
  'oom.yaml',
  'thrashing.yaml',
  'shared-file.yaml',
  'policies.yaml',
  'malloc.yaml',
  'gc-compare.yaml',
  'gc-cycles.yaml',
  'gc-pressure.yaml',
]);

describe('every example workload', () => {
  it('has a comment with its expected observations, and runs to a halted kernel', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const files = readdirSync('userland/workloads').filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(8);
    for (const f of files) {
      expect(readFileSync(`userland/workloads/${f}`, 'utf8'), f).toMatch(/^#[^\n]*\n(#[^\n]*\n)*/);
      expect(readFileSync(`userland/workloads/${f}`, 'utf8'), f).toMatch(
        /Expected observations|What to look for/,
      );
      if (RUN_ABOVE.has(f)) continue; // run and checked by its own test above
      const w = loadWorkload(`userland/workloads/${f}`);
      const run = await bootWorkload(w);
      run.m.kernel.run();
      run.m.shutdown();
      expect(run.m.kernel.state, f).toBe('halted');
    }
  });
});

describe('the event log', () => {
  it('writes pino JSON lines stamped with emulated time, the same bytes on every run', async () => {
    const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'vmlab-events-'));
    const runOnce = async (file: string, level: 'info' | 'debug') => {
      const w = loadWorkload('userland/workloads/oom.yaml');
      const run = await bootWorkload(w, { events: { path: join(dir, file), level } });
      run.m.kernel.run();
      run.m.kernel.eventLog?.close();
      run.m.shutdown();
      return { text: readFileSync(join(dir, file), 'utf8'), end: run.m.clock.now };
    };
    const a = await runOnce('a.jsonl', 'info');
    const b = await runOnce('b.jsonl', 'info');
    expect(a.text).toBe(b.text);
    const lines = a.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ level: 'info', time: 0, sub: 'kernel', event: 'boot' });
    expect(lines.filter((l) => l.event === 'spawn').map((l) => l.comm)).toEqual([
      'database',
      'worker',
      'leaky',
    ]);
    expect(lines.find((l) => l.event === 'oom_kill')).toMatchObject({ sub: 'oom', comm: 'leaky' });
    expect(lines.find((l) => l.event === 'exit' && l.comm === 'leaky')).toMatchObject({
      how: 'killed by SIGKILL',
    });
    for (const l of lines) {
      expect(l.cycles).toBeLessThanOrEqual(a.end);
      expect(l.time).toBeCloseTo(l.cycles / 1e6, 6); // emulated milliseconds at 1 GHz
    }
    expect(lines.some((l) => l.event === 'reclaim' && l.who === 'direct')).toBe(true);
    expect(lines.some((l) => l.event === 'fault' && l.sampled === 1024)).toBe(true);
    expect(lines.every((l) => !('hostname' in l))).toBe(true); // no host details: the log is deterministic
    const debug = await runOnce('c.jsonl', 'debug');
    expect(debug.text.split('\n').filter((l) => l.includes('"event":"fault"')).length).toBeGreaterThan(1000);
    const calls = debug.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((l) => l.event === 'syscall');
    expect(calls.some((l) => l.name === 'mmap' && typeof l.ret === 'number')).toBe(true);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('observers change nothing', () => {
  it('a run with the timeline sampler attached gives the same summary as one without', async () => {
    const { Timeline } = await import('../kernel/observe/timeline.ts');
    const plain = async (sample: boolean) => {
      // Several processes, sleeps, file reads and writeback: many events for a sampler to fall among.
      const w = loadWorkload('userland/workloads/shared-file.yaml');
      const run = await bootWorkload(w);
      if (sample) new Timeline(run.m.kernel, 10_000);
      run.m.kernel.run();
      run.m.shutdown();
      return summarize(run.m, w);
    };
    expect(await plain(true)).toEqual(await plain(false));
  });
});
