/**
 * Process benchmarks: demand-zero faults per second, fork + copy-on-write touch of a 64 MiB
 * process, and context switches per second.
 */
import { performance } from 'node:perf_hooks';
import { bootKernel, buildMachine } from '../../kernel/boot/machine.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, type UserMain } from '../../kernel/proc/uapi.ts';
import type { BenchFigure } from './run.ts';

function runOne(
  main: UserMain,
  memoryBytes: number,
): { seconds: number; kernel: ReturnType<typeof bootKernel>['kernel'] } {
  const m = bootKernel(buildMachine({ memoryBytes }), {
    loader: (path) =>
      path === '/bin/bench' ? { path, main, textBytes: 4096, dataBytes: 4096, bssBytes: 4096 } : undefined,
  });
  const t0 = performance.now();
  const task = m.kernel.spawn('/bin/bench', ['bench']);
  if (typeof task === 'number') throw new Error(`spawn failed: ${task}`);
  m.kernel.run();
  const seconds = (performance.now() - t0) / 1000;
  if (task.waitStatus !== 0) throw new Error(`bench program ended with status ${task.waitStatus}`);
  return { seconds, kernel: m.kernel };
}

export function run(): BenchFigure[] {
  const figures: BenchFigure[] = [];
  const page = 4096;
  {
    const pages = 65536; // 256 MiB of demand-zero faults
    const main: UserMain = function* ({ cpu, sys }) {
      const base = sys.mmap(0, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (base < 0) return 1;
      for (let p = 0; p < pages; p++) {
        cpu.store8(base + p * page, 1);
        if ((p & 63) === 0) yield;
      }
      return 0;
    };
    const { seconds, kernel } = runOne(main, 512 * 1024 * 1024);
    figures.push({
      name: 'demand-zero faults, fresh host memory (256 MiB)',
      value: kernel.events.pgfault / seconds,
      unit: 'faults/s',
    });
  }
  {
    const pages = 4096; // 16 MiB mapped, touched, unmapped, 32 times: frames are reused
    const rounds = 32;
    const main: UserMain = function* ({ cpu, sys }) {
      for (let r = 0; r < rounds; r++) {
        const base = sys.mmap(0, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base < 0) return 1;
        for (let p = 0; p < pages; p++) {
          cpu.store8(base + p * page, 1);
          if ((p & 63) === 0) yield;
        }
        sys.munmap(base, pages * page);
      }
      return 0;
    };
    const { seconds, kernel } = runOne(main, 64 * 1024 * 1024);
    figures.push({
      name: 'demand-zero faults, steady state (16 MiB x 32)',
      value: kernel.events.pgfault / seconds,
      unit: 'faults/s',
    });
  }
  {
    const bytes = 64 * 1024 * 1024;
    const pages = bytes / page;
    const main: UserMain = function* ({ cpu, sys }) {
      const base = sys.mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (base < 0) return 1;
      for (let p = 0; p < pages; p++) {
        cpu.store8(base + p * page, 1);
        if ((p & 63) === 0) yield;
      }
      const child = sys.fork(function* (c) {
        for (let p = 0; p < pages; p++) {
          c.cpu.store8(base + p * page, 2);
          if ((p & 63) === 0) yield;
        }
        return 0;
      });
      if (child < 0) return 2;
      const r = yield* sys.wait4(child, 0, 0);
      return r === child ? 0 : 3;
    };
    const m = bootKernel(buildMachine({ memoryBytes: 256 * 1024 * 1024 }), {
      loader: (path) =>
        path === '/bin/bench' ? { path, main, textBytes: 4096, dataBytes: 4096, bssBytes: 4096 } : undefined,
    });
    const task = m.kernel.spawn('/bin/bench', ['bench']);
    if (typeof task === 'number') throw new Error('spawn failed');
    const t0 = performance.now();
    m.kernel.run();
    const seconds = (performance.now() - t0) / 1000;
    figures.push({
      name: 'touch 64 MiB, fork, child COW-touches all of it',
      value: seconds * 1000,
      unit: 'ms (host)',
    });
    figures.push({ name: '  of which COW faults', value: m.kernel.events.cow_fault, unit: 'faults' });
  }
  {
    const rounds = 20000;
    const main: UserMain = function* ({ sys }) {
      const child = sys.fork(function* (c) {
        for (let i = 0; i < rounds; i++) yield* c.sys.sched_yield();
        return 0;
      });
      for (let i = 0; i < rounds; i++) yield* sys.sched_yield();
      yield* sys.wait4(child, 0, 0);
      return 0;
    };
    const { seconds, kernel } = runOne(main, 64 * 1024 * 1024);
    figures.push({
      name: 'context switches (two processes, sched_yield)',
      value: kernel.events.context_switches / seconds,
      unit: 'switches/s',
    });
  }
  return figures;
}
