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
 *
 * The future: a replay knows it, and gives every policy the position of each resident page's
 * next reference through view.nextUse (OPT and UNOPT need it; a policy from a file may use it
 * whatever its name). It is built on the policy's first question, so a policy that never asks
 * pays nothing for it.
 */
import { performance } from 'node:perf_hooks';
import type { DiskProfileName } from '../hw/disk.ts';
import { createPolicy } from '../mm/policy/index.ts';
import { OptPolicy } from '../mm/policy/opt.ts';
import type { OptTie, PolicyFactory } from '../mm/policy/types.ts';
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
  /** For the built-in opt: the tie rule among pages never used again (default 'earliest'). */
  optTie?: OptTie;
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
    /** OPT's tie rule, for the built-in opt only. */
    optTie?: OptTie;
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
 * each reference a real load, store or fetch, yielding after every fault.
 *
 * `future`: 'give' hands the trace's future to the policy whatever it is (vmlab replay, one
 * process); 'if-required' (the default, for workloads) only to a policy whose `future` is
 * 'required' (opt, unopt), since the trace knows nothing of other processes' pages. The future
 * belongs to one trace: a second replay process whose policy gets it is refused (throws).
 * The task, or throws when memory for the process or its regions is short.
 */
export function startTraceProcess(
  m: BootedMachine,
  trace: Trace,
  options: { name: string; frames: number; observe?: TraceObserver; future?: 'give' | 'if-required' },
): Task {
  const { kernel, mmu } = m;
  const page = m.format.pageBytes;
  const n = trace.length;
  const addresses = trace.addresses;
  const kinds = trace.kinds;
  const wanted = futureWanted(m, options);
  let future: TraceFuture | null = null;
  const observe = options.observe;
  const main: UserMain = function* (ctx) {
    const cpu = ctx.cpu;
    for (let i = 0; i < n; i++) {
      if (future !== null) future.now = i;
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
  if (wanted === 'give') future = giveFuture(m, trace, task);
  task.residentLimitPages = options.frames;
  for (const [start, end] of regionsOf(trace, page)) {
    const err = kernel.mapAnonymous(task, start, end);
    if (err < 0)
      throw new Error(`replay: cannot map [0x${start.toString(16)}, 0x${end.toString(16)}) (errno ${-err})`);
  }
  return task;
}

/**
 * Does the policy get the trace's future (see startTraceProcess)? Throws, before anything is
 * started, when it would but another replay process already gave it its own.
 */
function futureWanted(
  m: BootedMachine,
  options: { name: string; future?: 'give' | 'if-required' },
): 'give' | 'withhold' {
  const reclaimer = m.kernel.reclaimer;
  if (options.future !== 'give' && reclaimer.policy.future !== 'required') return 'withhold';
  if (reclaimer.futureOf !== null)
    throw new Error(
      `replay: ${options.name}: ${reclaimer.policy.name} reads the future of one trace, and another replay process already gave it`,
    );
  return 'give';
}

/**
 * Hand the trace's future to the reclaimer: for a frame of `task`, its page's next use; for any
 * other frame, Infinity (the trace never references it).
 */
function giveFuture(m: BootedMachine, trace: Trace, task: Task): TraceFuture {
  const future = new TraceFuture(trace, m.format.pageBytes);
  const { index, owner } = m.frames;
  const pid = task.pid;
  m.kernel.reclaimer.futureOf = (pfn) =>
    owner[pfn] === pid ? future.nextUse(index[pfn]!) : Number.POSITIVE_INFINITY;
  return future;
}

/**
 * A trace's future, for view.nextUse: at position `now`, the first later position that
 * references a page. Built on the first question (O(references) time, 8 bytes per reference
 * while building, 4 after), so a policy that never asks pays only for `now`.
 *
 *   the positions of page id k are at[first[k] .. first[k + 1]), increasing;
 *   cursor[k] only moves forward, and at[cursor[k] - 1] <= now when cursor[k] > first[k]
 * (`now` never decreases: the replay runs forward).
 */
class TraceFuture {
  /** The position of the reference being made (or just made). */
  now = 0;
  private idOf: Map<number, number> | null = null;
  private at = new Uint32Array(0);
  private first = new Uint32Array(0);
  private cursor = new Uint32Array(0);

  constructor(
    private readonly trace: Trace,
    private readonly pageBytes: number,
  ) {}

  /** The position of the next reference to virtual page `vpn` after `now`; Infinity if none. */
  nextUse(vpn: number): number {
    if (this.idOf === null) this.build();
    const id = this.idOf!.get(vpn);
    if (id === undefined) return Number.POSITIVE_INFINITY;
    const at = this.at;
    const end = this.first[id + 1]!;
    let c = this.cursor[id]!;
    while (c < end && at[c]! <= this.now) c++;
    this.cursor[id] = c;
    return c < end ? at[c]! : Number.POSITIVE_INFINITY;
  }

  /** Group the positions by page (a counting sort: ids in order of first appearance). */
  private build(): void {
    const { trace, pageBytes } = this;
    const n = trace.length;
    const idOf = new Map<number, number>();
    const ids = new Uint32Array(n);
    const counts: number[] = [];
    for (let i = 0; i < n; i++) {
      const vpn = Math.floor(trace.addresses[i]! / pageBytes);
      let id = idOf.get(vpn);
      if (id === undefined) {
        id = counts.length;
        idOf.set(vpn, id);
        counts.push(0);
      }
      ids[i] = id;
      counts[id]!++;
    }
    const first = new Uint32Array(counts.length + 1);
    for (let k = 0; k < counts.length; k++) first[k + 1] = first[k]! + counts[k]!;
    const fill = first.slice(0, counts.length);
    const at = new Uint32Array(n);
    for (let i = 0; i < n; i++) at[fill[ids[i]!]!++] = i;
    this.at = at;
    this.first = first;
    this.cursor = first.slice(0, counts.length);
    this.idOf = idOf;
  }
}

/**
 * Replay `options.trace` as one process of a new machine and count what happened (faults,
 * writebacks, TLB and walk figures, emulated cycles). Throws an InputError for a bad machine
 * or policy option, and an Error when the kernel panics or the process does not exit 0.
 */
export function replayTrace(options: ReplayOptions): ReplayResult {
  const m0 = buildMachine(options.machine);
  const page = m0.format.pageBytes;
  const { trace } = options;
  const distinctPages = countDistinctPages(trace, page);
  const m = bootKernel(m0, {
    loader: () => undefined,
    policy: options.policy,
    policyFactory: options.policyFactory ?? tiedOptFactory(options),
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
  const task = startTraceProcess(m, trace, {
    name: 'replay',
    frames: options.frames,
    observe,
    future: 'give',
  });
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
      ...(reclaimer.policy instanceof OptPolicy ? { optTie: reclaimer.policy.tie } : {}),
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

/** The built-in opt with options.optTie, when one is asked for (else the kernel makes the policy by name). */
function tiedOptFactory(options: ReplayOptions): PolicyFactory | undefined {
  const tie = options.optTie;
  if (tie === undefined) return undefined;
  return (o) => createPolicy(options.policy, { ...o, optTie: tie });
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
