/**
 * Trace replay through the full machine: one process whose program performs the trace's
 * references as real loads and stores, so every reference goes through the TLB, the page
 * tables, the fault handler, the replacement policy and the swap area.
 *
 * With a resident limit of N frames (local replacement) and nothing else pressing on memory,
 * the counts are the textbook ones: a fault is a reference to a non-resident page (compulsory
 * faults included); a writeback is the eviction of a page written since it was loaded.
 *
 * The process yields after every fault (and every 4096 references), so a swap-in's disk time
 * is charged while it sleeps.
 */
import { performance } from 'node:perf_hooks';
import type { DiskProfileName } from '../hw/disk.ts';
import type { PolicyFactory } from '../mm/policy/types.ts';
import type { Task } from '../proc/task.ts';
import type { UserMain } from '../proc/uapi.ts';
import { type BootedMachine, bootKernel, buildMachine, type MachineConfig } from './machine.ts';
import { REF_FETCH, REF_WRITE, type Trace } from './traces.ts';

export interface ReplayOptions {
  trace: Trace;
  /** Resident limit of the replaying process in frames (0: none, global memory only). */
  frames: number;
  policy: string;
  /** A policy from a file (labs); `policy` then only names it in the output. */
  policyFactory?: PolicyFactory;
  machine: Partial<MachineConfig>;
  swapProfile?: DiskProfileName;
  /** Collect one line per reference (OSTEP-style), for small traces. */
  verbose?: boolean;
}

export interface ReplayResult {
  references: number;
  faults: number;
  majorFaults: number;
  writebacks: number;
  tlbMisses: number;
  tlbHits: number;
  /** Second-level TLB hits and misses (0 without one), and page walks. */
  stlbHits: number;
  stlbMisses: number;
  walks: number;
  cycles: number;
  hostSeconds: number;
  config: {
    policy: string;
    frames: number;
    format: string;
    pageBytes: number;
    tlbEntries: number;
    tlbWays: number;
    tlbReplacement: string;
    stlbEntries: number;
    stlbWays: number;
  };
  lines?: string[];
}

/** Pages mapped per region around the referenced addresses (VMAs are lazy: no frames until touched). */
const REGION_PAGES = 64;

/** Hooks around each reference of a trace process (verbose replays). */
export interface TraceObserver {
  before(i: number): void;
  after(i: number, va: number, kind: number, faulted: boolean): void;
}

/**
 * Start a process that replays `trace` on booted machine `m`: a bare image whose memory is
 * mapped (anonymous, lazily) in regions around the trace's addresses, and whose program makes
 * each reference a real load, store or fetch, yielding after every fault. With the OPT policy,
 * the policy learns each page's next use from the trace. The task, or throws when memory for
 * the process or its regions is short.
 */
export function startTraceProcess(
  m: BootedMachine,
  trace: Trace,
  options: { name: string; frames: number; observe?: TraceObserver },
): Task {
  const { kernel, mmu } = m;
  const page = m.format.pageBytes;
  const reclaimer = kernel.reclaimer;
  const n = trace.length;
  const addresses = trace.addresses;
  const kinds = trace.kinds;
  let step: ((i: number) => void) | null = null;
  if (reclaimer.policy.name === 'opt') {
    const next = nextUses(trace, page);
    const nextOfPage = new Map<number, number>();
    reclaimer.futureOf = (pfn) => nextOfPage.get(m.frames.index[pfn]!) ?? Number.POSITIVE_INFINITY;
    // OPT needs the next use of every resident page at each step: kept up to date below.
    step = (i: number) => {
      nextOfPage.set(Math.floor(addresses[i]! / page), next[i]!);
    };
  }
  const observe = options.observe;
  const main: UserMain = function* (ctx) {
    const cpu = ctx.cpu;
    for (let i = 0; i < n; i++) {
      if (step !== null) step(i);
      observe?.before(i);
      const va = addresses[i]!;
      const before = mmu.faults;
      const kind = kinds[i]!;
      if (kind === REF_WRITE) cpu.store8(va, i & 0xff);
      else if (kind === REF_FETCH) cpu.fetch8(va);
      else cpu.load8(va);
      const faulted = mmu.faults !== before;
      observe?.after(i, va, kind, faulted);
      if (faulted || (i & 4095) === 4095) yield;
    }
    return 0;
  };
  const task = kernel.spawnImage(
    { path: `/${options.name}`, main, textBytes: 0, dataBytes: 0, bssBytes: 0, bare: true },
    [options.name],
  );
  if (typeof task === 'number') throw new Error(`replay: cannot start the replay process (errno ${-task})`);
  task.residentLimitPages = options.frames;
  for (const [start, end] of regionsOf(trace, page)) {
    const err = kernel.mapAnonymous(task, start, end);
    if (err < 0)
      throw new Error(`replay: cannot map [0x${start.toString(16)}, 0x${end.toString(16)}) (errno ${-err})`);
  }
  return task;
}

export function replayTrace(options: ReplayOptions): ReplayResult {
  const m0 = buildMachine(options.machine);
  const page = m0.format.pageBytes;
  const { trace } = options;
  const distinctPages = countDistinctPages(trace, page);
  const m = bootKernel(m0, {
    loader: () => undefined,
    policy: options.policy,
    policyFactory: options.policyFactory,
    scope: options.frames > 0 ? 'local' : 'global',
    swap: { bytes: (distinctPages + 2) * page, profile: options.swapProfile ?? 'ssd' },
    tunables: { kswapd: options.frames === 0 },
  });
  const { kernel, mmu, clock } = m;
  const reclaimer = kernel.reclaimer;
  const n = trace.length;
  const lines: string[] | undefined = options.verbose ? [] : undefined;
  let hits = 0;
  let residentBefore: number[] = [];
  const observe: TraceObserver | undefined =
    lines === undefined
      ? undefined
      : {
          before: () => {
            residentBefore = residentPages(reclaimer.policy.order(), m.frames.index);
          },
          after: (i, va, kind, faulted) => {
            if (!faulted) hits++;
            const order = reclaimer.policy.order();
            lines.push(
              verboseLine(
                i,
                va,
                kind,
                faulted,
                residentBefore,
                order,
                m.frames.index,
                page,
                hits,
                i + 1 - hits,
              ),
            );
          },
        };
  const task = startTraceProcess(m, trace, { name: 'replay', frames: options.frames, observe });
  const t0 = performance.now();
  const startCycles = clock.now;
  kernel.run();
  const hostSeconds = (performance.now() - t0) / 1000;
  m.shutdown();
  if (kernel.state === 'panic') throw new Error(`replay: kernel panic: ${kernel.log.at(-1)?.text}`);
  if (task.waitStatus !== 0) {
    throw new Error(
      `replay: the replay process ended with ${kernel.describeEnd(task)}: ${kernel.log.at(-1)?.text ?? ''}`,
    );
  }
  const tlbs = mmu.itlb === mmu.dtlb ? [mmu.dtlb] : [mmu.dtlb, mmu.itlb];
  const result: ReplayResult = {
    references: n,
    faults: task.minFlt + task.majFlt,
    majorFaults: task.majFlt,
    writebacks: reclaimer.writebacks,
    tlbMisses: tlbs.reduce((a, t) => a + t.misses, 0),
    tlbHits: tlbs.reduce((a, t) => a + t.hits, 0),
    stlbHits: mmu.stlb?.hits ?? 0,
    stlbMisses: mmu.stlb?.misses ?? 0,
    walks: mmu.walks,
    cycles: clock.now - startCycles,
    hostSeconds,
    config: {
      policy: reclaimer.policy.name,
      frames: options.frames,
      format: m.format.name,
      pageBytes: page,
      tlbEntries: m.config.tlbEntries,
      tlbWays: m.config.tlbWays,
      tlbReplacement: m.config.tlbReplacement,
      stlbEntries: mmu.stlb?.entries ?? 0,
      stlbWays: mmu.stlb?.ways ?? 0,
    },
  };
  if (lines !== undefined) result.lines = lines;
  return result;
}

/** The aligned regions of REGION_PAGES pages that the trace touches, merged, in address order. */
function regionsOf(trace: Trace, page: number): Array<[number, number]> {
  const span = page * REGION_PAGES;
  const starts = new Set<number>();
  for (let i = 0; i < trace.length; i++) starts.add(Math.floor(trace.addresses[i]! / span));
  const sorted = [...starts].sort((a, b) => a - b);
  const out: Array<[number, number]> = [];
  for (const r of sorted) {
    const start = r * span;
    const last = out[out.length - 1];
    if (last !== undefined && last[1] === start) last[1] = start + span;
    else out.push([start, start + span]);
  }
  return out;
}

function countDistinctPages(trace: Trace, page: number): number {
  const pages = new Set<number>();
  for (let i = 0; i < trace.length; i++) pages.add(Math.floor(trace.addresses[i]! / page));
  return pages.size;
}

/** For each reference, the position of the next reference to the same page (Infinity if none). */
function nextUses(trace: Trace, page: number): Float64Array {
  const next = new Float64Array(trace.length);
  const seen = new Map<number, number>();
  for (let i = trace.length - 1; i >= 0; i--) {
    const p = Math.floor(trace.addresses[i]! / page);
    next[i] = seen.get(p) ?? Number.POSITIVE_INFINITY;
    seen.set(p, i);
  }
  return next;
}

function residentPages(order: number[], index: Float64Array): number[] {
  return order.map((pfn) => index[pfn]!);
}

function verboseLine(
  i: number,
  va: number,
  kind: number,
  faulted: boolean,
  before: number[],
  orderAfter: number[],
  index: Float64Array,
  page: number,
  hits: number,
  misses: number,
): string {
  const after = residentPages(orderAfter, index);
  const evicted = before.filter((p) => !after.includes(p));
  const vpn = Math.floor(va / page);
  const op = kind === REF_WRITE ? 'W' : kind === REF_FETCH ? 'X' : 'R';
  const what = faulted ? 'MISS' : 'HIT ';
  const victim = evicted.length > 0 ? ` evict ${evicted.join(',')}` : '';
  return `ref ${String(i).padStart(6)}: page ${vpn} ${op} ${what}${victim.padEnd(10)} resident [${after.join(', ')}]  hits ${hits} misses ${misses}`;
}
