/**
 * Thrashing made visible: N processes each cycle over a working set of W pages on a machine of
 * M frames. As N passes M/W, CPU utilization collapses and major faults soar.
 */
import { bootKernel, buildMachine } from '../../kernel/boot/machine.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, type UserMain } from '../../kernel/proc/uapi.ts';
import type { BenchFigure } from './run.ts';

const PAGE = 4096;

export interface ThrashPoint {
  processes: number;
  utilization: number;
  majorFaultsPerSecond: number;
  seconds: number;
}

/** Run N processes of W pages, `rounds` passes each, on `memoryMiB`; returns the emulated figures. */
export function thrashPoint(
  processes: number,
  workingSetPages: number,
  memoryMiB: number,
  rounds: number,
): ThrashPoint {
  const worker: UserMain = function* ({ cpu, sys }) {
    const base = sys.mmap(
      0,
      workingSetPages * PAGE,
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS,
      -1,
      0,
    );
    if (base < 0) return 1;
    for (let r = 0; r < rounds; r++) {
      for (let p = 0; p < workingSetPages; p++) {
        const va = base + p * PAGE;
        cpu.store32(va, cpu.load32(va) + 1);
        cpu.compute(2000); // work per page: 2 us at 1 GHz
        yield;
      }
    }
    return 0;
  };
  const m = bootKernel(buildMachine({ memoryBytes: memoryMiB * 1024 * 1024, seed: 1 }), {
    loader: (path) =>
      path === '/bin/worker'
        ? { path, main: worker, textBytes: 4096, dataBytes: 4096, bssBytes: 4096 }
        : undefined,
    policy: 'clock',
    swap: { bytes: processes * workingSetPages * PAGE * 2, profile: 'ssd' },
  });
  for (let i = 0; i < processes; i++) m.kernel.spawn('/bin/worker', ['worker']);
  const start = m.clock.now;
  m.kernel.run();
  m.shutdown();
  const cycles = m.clock.now - start;
  const seconds = cycles / m.clock.hz;
  return {
    processes,
    utilization: 1 - m.kernel.idleCycles / cycles,
    majorFaultsPerSecond: m.kernel.events.pgmajfault / seconds,
    seconds,
  };
}

export function run(): BenchFigure[] {
  const figures: BenchFigure[] = [];
  // 32 MiB machine (8192 frames, ~7600 usable); each process cycles over 1024 pages (4 MiB).
  for (const n of [2, 4, 6, 7, 8, 9, 10, 12]) {
    const p = thrashPoint(n, 1024, 32, 6);
    figures.push({
      name: `thrash N=${n} (W=1024 pages, M=8192 frames): CPU utilization`,
      value: 100 * p.utilization,
      unit: '%',
    });
    figures.push({
      name: `thrash N=${n}: major faults per emulated second`,
      value: p.majorFaultsPerSecond,
      unit: 'faults/s',
    });
  }
  return figures;
}
