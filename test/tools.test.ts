import { describe, expect, it } from 'vitest';
import { bootWorkload } from '../kernel/boot/cmd-run.ts';
import { loadWorkload } from '../kernel/boot/workload.ts';
import { renderFree, renderPmap, renderTop, renderVmstatTool, runTool } from '../kernel/observe/tools.ts';

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
    expect(cols[0]).toBeGreaterThan(0); // runnable workers
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
