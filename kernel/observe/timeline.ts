/**
 * The timeline: the whole machine sampled every fixed interval of emulated time, for reports.
 * Each sample records memory composition (pages), rates over the interval (faults, swap in and
 * out per emulated second), CPU utilization, TLB hit rate, run-queue length, and every live
 * process's RSS. Samples are taken by a clock event, so they cost nothing between intervals.
 */
import { PG_ANON, PG_PAGETABLE, PG_SHMEM, PG_SLAB, PG_SWAPCACHE } from '../mm/page.ts';
import type { Kernel } from '../proc/kernel.ts';

export interface TimelineSample {
  /** Emulated time in cycles. */
  time: number;
  freePages: number;
  anonPages: number;
  shmemPages: number;
  swapCachedPages: number;
  slabPages: number;
  pageTablePages: number;
  swapUsedPages: number;
  faultsPerSecond: number;
  majorFaultsPerSecond: number;
  swapInPerSecond: number;
  swapOutPerSecond: number;
  cpuUtilization: number;
  tlbHitRate: number;
  runQueue: number;
  /** pid -> resident pages. */
  rss: Record<number, number>;
}

export class Timeline {
  readonly samples: TimelineSample[] = [];
  readonly intervalCycles: number;
  private readonly kernel: Kernel;
  private last = { time: 0, faults: 0, major: 0, swapIn: 0, swapOut: 0, idle: 0, hits: 0, misses: 0 };

  constructor(kernel: Kernel, intervalCycles: number) {
    this.kernel = kernel;
    this.intervalCycles = intervalCycles;
    this.sample();
    this.schedule();
  }

  /** Take one sample now (also called at the end of a run). */
  sample(): void {
    const k = this.kernel;
    const { clock, pages, buddy, mmu } = k.hw;
    const now = clock.now;
    let anon = 0;
    let shmem = 0;
    let swapCached = 0;
    let slab = 0;
    let tables = 0;
    for (let pfn = 0; pfn < pages.count; pfn++) {
      const f = pages.flags[pfn]!;
      if (f & PG_ANON) {
        if (f & PG_SHMEM) shmem++;
        else anon++;
        if (f & PG_SWAPCACHE) swapCached++;
      } else if (f & PG_SLAB) slab++;
      else if (f & PG_PAGETABLE) tables++;
    }
    const dt = Math.max(1, now - this.last.time) / clock.hz;
    const e = k.events;
    const hits = mmu.dtlb.hits + (mmu.itlb === mmu.dtlb ? 0 : mmu.itlb.hits);
    const misses = mmu.dtlb.misses + (mmu.itlb === mmu.dtlb ? 0 : mmu.itlb.misses);
    const refs = hits - this.last.hits + (misses - this.last.misses);
    const rss: Record<number, number> = {};
    for (const t of k.tasks.values()) if (t.mm !== null && !t.kernelThread) rss[t.pid] = t.mm.rss();
    this.samples.push({
      time: now,
      freePages: buddy.freePages(),
      anonPages: anon,
      shmemPages: shmem,
      swapCachedPages: swapCached,
      slabPages: slab,
      pageTablePages: tables,
      swapUsedPages: k.swap === null ? 0 : k.swap.usableSlots - k.swap.freeSlots,
      faultsPerSecond: (e.pgfault - this.last.faults) / dt,
      majorFaultsPerSecond: (e.pgmajfault - this.last.major) / dt,
      swapInPerSecond: (e.pswpin - this.last.swapIn) / dt,
      swapOutPerSecond: (e.pswpout - this.last.swapOut) / dt,
      cpuUtilization: now > this.last.time ? 1 - (k.idleCycles - this.last.idle) / (now - this.last.time) : 0,
      tlbHitRate: refs > 0 ? (hits - this.last.hits) / refs : 0,
      runQueue: k.sched.queued().length,
      rss,
    });
    this.last = {
      time: now,
      faults: e.pgfault,
      major: e.pgmajfault,
      swapIn: e.pswpin,
      swapOut: e.pswpout,
      idle: k.idleCycles,
      hits,
      misses,
    };
  }

  private schedule(): void {
    this.kernel.hw.clock.after(
      this.intervalCycles,
      'timeline sample',
      () => {
        this.sample();
        // Keep sampling while anything may still run.
        if (this.kernel.liveTasks().length > 0 || this.kernel.hw.clock.pending() > 0) this.schedule();
      },
      { observer: true },
    );
  }
}
