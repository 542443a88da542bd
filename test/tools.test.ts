import { afterEach, describe, expect, it } from 'vitest';
import { bootWorkload } from '../kernel/boot/cmd-run.ts';
import { loadWorkload } from '../kernel/boot/workload.ts';
import {
  IdleClock,
  renderFree,
  renderPmap,
  renderTop,
  renderVmstatTool,
  runTool,
  ToolUsageError,
  watchTool,
} from '../kernel/observe/tools.ts';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_CREAT,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  type UserMain,
} from '../kernel/proc/uapi.ts';
import { bootTestMachine, PAGE, type TestMachine } from './helpers/kernel.ts';

async function paused() {
  const run = await bootWorkload(loadWorkload('userland/workloads/thrashing.yaml'));
  run.m.kernel.run({ untilCycles: 20_000_000 });
  return run;
}

describe('free, vmstat, pmap and top', () => {
  it('free prints procps-ng columns: the label in 9, each value in 11, used = total - available', async () => {
    const run = await paused();
    const lines = renderFree(run.m.kernel).split('\n');
    expect(lines[0]).toBe('               total        used        free      shared  buff/cache   available');
    expect(lines[1]).toMatch(/^Mem: {5}( {0,10}\d+)( {1,11}\d+){5}$/);
    expect(lines[1]!.length).toBe(9 + 11 + 5 * 12);
    const [total, used, , , , available] = lines[1]!.slice(4).trim().split(/\s+/).map(Number);
    expect(used).toBe(total! - available!);
    expect(lines[2]).toMatch(/^Swap: {4}/);
    expect(renderFree(run.m.kernel, { human: true }).split('\n')[2]).toMatch(/Mi/);
    run.m.shutdown();
  });

  it('vmstat prints the two header lines and a row of averages since boot', async () => {
    const run = await paused();
    const lines = renderVmstatTool(run.m.kernel).split('\n');
    expect(lines[0]).toBe('procs -----------memory---------- ---swap-- -----io---- -system-- ------cpu-----');
    expect(lines[1]).toBe(' r  b   swpd   free   buff  cache   si   so    bi    bo   in   cs us sy id wa st');
    const cols = lines[2]!.trim().split(/\s+/).map(Number);
    expect(cols).toHaveLength(17);
    expect(cols[0]! + cols[1]!).toBeGreaterThan(0); // workers runnable or waiting for the disk
    expect(cols[2]).toBeGreaterThan(0); // swap in use: the workload thrashes
    run.m.shutdown();
  });

  it('pmap lists every mapping and the total; top sorts processes by resident memory', async () => {
    const run = await paused();
    const task = [...run.m.kernel.tasks.values()].find((t) => t.comm === 'worker' && t.mm !== null)!;
    const pmap = renderPmap(task).trimEnd().split('\n');
    expect(pmap[0]).toBe(`${task.pid}:   worker`);
    expect(pmap.at(-1)).toBe(` total ${`${task.mm!.totalVm() / 1024}K`.padStart(16)}`);
    expect(pmap.some((l) => l.endsWith('[ stack ]'))).toBe(true);
    const top = renderTop(run.m.kernel).split('\n');
    const rows = top
      .slice(top.findIndex((l) => l.includes('PID COMMAND')) + 1)
      .filter((l) => l.trim() !== '');
    const res = rows.map((r) => Number(r.trim().split(/\s+/)[4]));
    expect(res).toEqual([...res].sort((a, b) => b - a));
    expect(runTool(run.m.kernel, 'pmap 99999')).toBe('pmap: no process 99999\n');
    expect(runTool(run.m.kernel, 'ls')).toBeUndefined();
    run.m.shutdown();
  });
});

describe('vmstat DELAY COUNT, and wa', () => {
  /** Machines booted by a test, shut down after it. */
  const booted: TestMachine[] = [];
  afterEach(() => {
    for (const m of booted.splice(0)) m.shutdown();
  });
  const boot = (): TestMachine => {
    const m = bootTestMachine({ memoryMiB: 16 });
    booted.push(m);
    return m;
  };

  /** Writes 64 pages to a file and fsyncs them (waiting for the disk), then sleeps 2 ms. */
  const syncThenSleep: UserMain = function* ({ sys }) {
    const buf = sys.mmap(0, 64 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const fd = sys.open('/out.bin', O_CREAT | O_RDWR);
    if (sys.write(fd, buf, 64 * PAGE) !== 64 * PAGE) return 1;
    if (sys.fsync(fd) !== 0) return 2;
    yield;
    yield* sys.nanosleep(2e6);
    return 0;
  };

  /** Rows of a vmstat view as numbers (the header lines dropped). */
  const rowsOf = (text: string): number[][] =>
    text
      .trimEnd()
      .split('\n')
      .slice(2)
      .map((l) => l.trim().split(/\s+/).map(Number));

  it('prints a row every DELAY from boot, at most COUNT, until the machine stops', () => {
    const m = boot();
    m.start(syncThenSleep);
    const five = watchTool(m.kernel, 'vmstat 500us 5')!;
    const all = watchTool(m.kernel, 'vmstat 0.0005')!; // seconds, as procps takes DELAY
    const once = watchTool(m.kernel, 'vmstat')!;
    m.runToEnd();
    const end = m.clock.now;
    expect(end).toBeGreaterThan(2_500_000); // 1 GHz: more than five rows of 500 us
    expect(five().split('\n').slice(0, 2).join('\n')).toBe(
      renderVmstatTool(m.kernel).split('\n').slice(0, 2).join('\n'),
    );
    expect(rowsOf(five())).toHaveLength(5);
    const rows = rowsOf(all());
    expect(rows).toHaveLength(Math.floor(end / 500_000));
    expect(rowsOf(five())).toEqual(rows.slice(0, 5));
    for (const r of rows) {
      expect(r).toHaveLength(17);
      const [us, sy, id, wa, st] = r.slice(12);
      for (const share of [us, id, wa]) expect(share).toBeGreaterThanOrEqual(0);
      for (const share of [us, id, wa]) expect(share).toBeLessThanOrEqual(100);
      expect(sy).toBe(0);
      expect(st).toBe(0);
      expect(Math.abs(us! + id! + wa! - 100)).toBeLessThanOrEqual(2); // each share rounds alone
    }
    // The first interval waits for the fsync; the sleep's last full one idles plainly.
    expect(rows[0]![15]).toBeGreaterThan(0);
    expect(rows.at(-1)!.slice(12)).toEqual([0, 0, 100, 0, 0]);
    expect(rowsOf(once())).toHaveLength(1);
  });

  it('counts idle time while a process waits for the disk as wa, and the sleep as id', () => {
    const m = boot();
    m.start(syncThenSleep);
    const clock = new IdleClock(m.kernel);
    const view = watchTool(m.kernel, 'vmstat')!;
    m.runToEnd();
    const idle = m.kernel.idleCycles;
    const iowait = clock.iowaitCycles();
    expect(clock.idleCycles()).toBe(idle);
    expect(iowait).toBeGreaterThan(0); // the fsync
    expect(idle - iowait).toBeGreaterThanOrEqual(2_000_000); // the 2 ms sleep
    const [row] = rowsOf(view());
    const share = (cycles: number): number =>
      Math.floor((100 * cycles + Math.floor(m.clock.now / 2)) / m.clock.now);
    expect(row!.slice(12)).toEqual([share(m.clock.now - idle), 0, share(idle - iowait), share(iowait), 0]);
    // Unwatched, the same row counts all idle time as id.
    expect(rowsOf(renderVmstatTool(m.kernel))[0]![15]).toBe(0);
  });

  it('watching changes nothing in the run', () => {
    const outcome = (watch: boolean) => {
      const m = boot();
      const t = m.start(syncThenSleep);
      if (watch) watchTool(m.kernel, 'vmstat 100us');
      m.runToEnd();
      const result = {
        now: m.clock.now,
        idle: m.kernel.idleCycles,
        status: t.waitStatus,
        events: { ...m.kernel.events },
      };
      return result;
    };
    expect(outcome(true)).toEqual(outcome(false));
  });

  it('refuses bad arguments, and rows over time without watching the run', () => {
    const m = boot();
    for (const bad of ['vmstat 0', 'vmstat 1 0', 'vmstat 1 2 3', 'vmstat x', 'vmstat 1 -1', 'vmstat 1us 1.5'])
      expect(() => watchTool(m.kernel, bad), bad).toThrow(ToolUsageError);
    expect(() => runTool(m.kernel, 'vmstat 1 3')).toThrow(/sampled during the run/);
    expect(watchTool(m.kernel, 'free')).toBeUndefined();
    expect(runTool(m.kernel, 'vmstat')).toMatch(/^procs /);
  });
});
