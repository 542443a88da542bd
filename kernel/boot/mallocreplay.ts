/**
 * `vmlab malloc-replay`: CS:APP malloc-lab traces replayed by an allocator inside an emulated
 * process, checked as the lab's driver checks them (16-byte alignment, no overlapping live
 * blocks, payload bytes preserved across realloc: every block is filled with seeded bytes and
 * verified), with utilization = peak live payload / heap high-water mark.
 *
 * The high-water mark is the kernel's view of the process (KernelFootprint), sampled after
 * every call: the allocator's own stats().heapBytes is reported beside it, as a cross-check,
 * and counts for nothing (an allocator that under-reports gets its true utilization).
 *
 * Throughput is measured as the lab's driver measures it: in further replays of the trace, each
 * in a fresh process, that only call the allocator (no payload fill, no checks); the allocator
 * still reaches all its metadata through the MMU. The fastest run counts: of three, or (option
 * `speed: 'k-best'`, what `vmlab malloc-replay` uses) by the lab's K-best scheme, running until
 * the K fastest agree within EPSILON, at most MAX_SPEED_RUNS times (and no more once K runs
 * have taken SPEED_BUDGET_SECONDS, for slow allocators). The checked replay's rate is reported
 * too.
 *
 * Trace format: four header numbers (the classic set: heap size hint, ids, ops, weight; the
 * 2016 set: weight, ids, ops, peak payload), then `a id bytes`, `r id bytes`, `f id`.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { LeakCheck } from '../../userland/libc/leak.ts';
import { Libc, STATIC_DATA_BYTES } from '../../userland/libc/libc.ts';
import { Malloc } from '../../userland/libc/malloc.ts';
import { type Allocator, MALLOC_ALIGNMENT, MallocAbort } from '../../userland/malloc/allocator.ts';
import { ALLOCATOR_NAMES, createAllocator } from '../../userland/malloc/index.ts';
import type { AddressSpace } from '../mm/mm.ts';
import type { UserContext, UserMain } from '../proc/uapi.ts';
import { InputError } from './configfile.ts';
import { bootKernel, buildMachine } from './machine.ts';

export const OP_ALLOC = 0;
export const OP_REALLOC = 1;
export const OP_FREE = 2;

export interface MallocTrace {
  path: string;
  header: [number, number, number, number];
  ids: number;
  ops: Array<{ op: number; id: number; bytes: number; line: number }>;
}

/** Parse a malloc-lab trace; InputError with file, line and reason on any inconsistency. */
export function parseMallocTrace(path: string, text: string): MallocTrace {
  const tokens: Array<{ t: string; line: number }> = [];
  text.split('\n').forEach((l, i) => {
    for (const t of l.trim().split(/\s+/)) if (t !== '') tokens.push({ t, line: i + 1 });
  });
  const num = (k: number, what: string): number => {
    const tok = tokens[k];
    if (tok === undefined) throw new InputError(`${path}: header: missing ${what}`);
    const v = Number(tok.t);
    if (!Number.isSafeInteger(v))
      throw new InputError(`${path}:${tok.line}: header: ${what} '${tok.t}' is not a whole number`);
    return v;
  };
  const header: [number, number, number, number] = [
    num(0, 'first number'),
    num(1, 'id count'),
    num(2, 'op count'),
    num(3, 'fourth number'),
  ];
  const ids = header[1];
  const live = new Uint8Array(Math.max(0, ids));
  const ops: MallocTrace['ops'] = [];
  let k = 4;
  while (k < tokens.length) {
    const { t, line } = tokens[k]!;
    const where = `${path}:${line}`;
    const id = Number(tokens[k + 1]?.t);
    if (!Number.isInteger(id) || id < 0 || id >= ids)
      throw new InputError(`${where}: id '${tokens[k + 1]?.t}' is not in 0..${ids - 1}`);
    if (t === 'a' || t === 'r') {
      const bytes = Number(tokens[k + 2]?.t);
      if (!Number.isSafeInteger(bytes) || bytes < 0)
        throw new InputError(`${where}: size '${tokens[k + 2]?.t}' is not a byte count`);
      if (t === 'a' && live[id]) throw new InputError(`${where}: block ${id} allocated twice`);
      if (t === 'r' && !live[id])
        throw new InputError(`${where}: block ${id} reallocated before it was allocated`);
      live[id] = 1;
      ops.push({ op: t === 'a' ? OP_ALLOC : OP_REALLOC, id, bytes, line });
      k += 3;
    } else if (t === 'f') {
      if (!live[id]) throw new InputError(`${where}: block ${id} freed before allocation or after free`);
      live[id] = 0;
      ops.push({ op: OP_FREE, id, bytes: 0, line });
      k += 2;
    } else {
      throw new InputError(`${where}: unknown operation '${t}' (expected a, r or f)`);
    }
  }
  if (ops.length !== header[2])
    throw new InputError(`${path}: header: says ${header[2]} operations, the file has ${ops.length}`);
  return { path, header, ids, ops };
}

export function loadMallocTrace(path: string): MallocTrace {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InputError(
      `${path}: cannot read the trace: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  return parseMallocTrace(path, text);
}

export interface MallocReplayResult {
  trace: string;
  allocator: string;
  operations: number;
  /** 'ok', or what went wrong: a correctness failure, ENOMEM, an abort. */
  outcome: string;
  peakPayloadBytes: number;
  /**
   * The most bytes the allocator held at once, after any call, as the kernel sees the process:
   * the brk extent plus the bytes of the mappings it made (KernelFootprint).
   */
  heapHighWaterBytes: number;
  /** The most the allocator's own stats().heapBytes said, for comparison only. */
  reportedHeapHighWaterBytes: number;
  /** peakPayloadBytes / heapHighWaterBytes. */
  utilization: number;
  /** Operations per second (host time) of the unchecked timed replay (0 when the trace failed). */
  opsPerSecond: number;
  /** Operations per second of the checked replay (fill, verify, overlap checks included). */
  checkedOpsPerSecond: number;
  /** Speed runs made (3, or with K-best until the fastest K agree, at most 20; 0 with speed none). */
  speedRuns: number;
  /**
   * What one operation of a speed run costs the emulated machine, on average (the same in
   * every run): loads and stores through the MMU, first-level data TLB misses, page walks
   * (the misses the second-level TLB did not serve), page faults.
   */
  speedCost: { accessesPerOp: number; tlbMissesPerOp: number; walksPerOp: number; faultsPerOp: number };
  minorFaults: number;
  majorFaults: number;
  tlbMisses: number;
  /** What the driver printed at exit: the leak report when `leakCheck` asked for one. */
  leakReport: string;
}

export interface MallocReplayOptions {
  memoryBytes?: number;
  seed?: number;
  factory?: (libc: Libc) => Allocator;
  /** A leak report at the driver's exit, through libc's exit path (default 'off'). */
  leakCheck?: LeakCheck;
  /** How many speed runs: the fastest of 3 (the default, quick), the lab's K-best, or none (utilization only). */
  speed?: 'best-of-3' | 'k-best' | 'none';
}

/** Replay `trace` with allocator `name` in a fresh machine. */
export function mallocReplay(
  trace: MallocTrace,
  allocatorName: string,
  options: MallocReplayOptions = {},
): MallocReplayResult {
  if (options.factory === undefined && !ALLOCATOR_NAMES.includes(allocatorName)) {
    throw new InputError(
      `--allocator: unknown allocator '${allocatorName}' (one of ${ALLOCATOR_NAMES.join(', ')})`,
    );
  }
  let outcome = 'ok';
  let peakPayload = 0;
  let heapHwm = 0;
  let reportedHwm = 0;
  let hostSeconds = 0;
  const seed = options.seed ?? 1;
  const main = function* (ctx: UserContext, libc: Libc): Generator<void, number, void> {
    const footprint = new KernelFootprint(m.kernel.tasks.get(ctx.sys.getpid())!.mm!, libc);
    // The calls go through libc's Malloc, whose table of requested sizes the leak report reads.
    const heap = new Malloc(libc, {
      allocator: options.factory ?? allocatorName,
      leakCheck: options.leakCheck ?? 'off',
      check: 'cheap',
    });
    const alloc = heap.allocator;
    const ptr = new Float64Array(trace.ids);
    const size = new Float64Array(trace.ids);
    const live: number[] = []; // sorted block starts, for overlap checks
    const ends = new Map<number, { end: number; id: number }>();
    const got = new Uint8Array(4096);
    const want = new Uint8Array(4096);
    let payload = 0;
    // As the lab's driver does, each block is filled with one byte of its own (here seeded)
    // and a realloc must keep the old payload's bytes. After a realloc the kept bytes have just
    // been verified, so only the bytes past them are filled.
    const fill = (id: number, p: number, from: number, n: number): void => {
      if (n > from) ctx.cpu.fillBytes(p + from, n - from, byteFor(seed, id));
    };
    const verify = (id: number, p: number, n: number): boolean => {
      want.fill(byteFor(seed, id));
      for (let off = 0; off < n; off += got.length) {
        const len = Math.min(got.length, n - off);
        ctx.cpu.loadBytes(p + off, got, 0, len);
        if (Buffer.compare(got.subarray(0, len), want.subarray(0, len)) !== 0) return false;
      }
      return true;
    };
    const t0 = performance.now();
    try {
      const ops = trace.ops;
      for (let i = 0; i < ops.length; i++) {
        const o = ops[i]!;
        if (o.op === OP_FREE) {
          const p = ptr[o.id]!;
          removeLive(live, p);
          ends.delete(p);
          heap.free(p);
          payload -= size[o.id]!;
        } else {
          const old = ptr[o.id]!;
          const oldSize = size[o.id]!;
          if (o.op === OP_REALLOC) {
            removeLive(live, old);
            ends.delete(old);
          }
          const p = o.op === OP_ALLOC ? heap.malloc(o.bytes) : heap.realloc(old, o.bytes);
          if (p === 0 && o.bytes > 0) {
            outcome = `${trace.path}:${o.line}: ${o.op === OP_ALLOC ? 'malloc' : 'realloc'}(${o.bytes}) returned NULL (ENOMEM)`;
            break;
          }
          if (p % MALLOC_ALIGNMENT !== 0) {
            outcome = `${trace.path}:${o.line}: block ${o.id} at 0x${p.toString(16)} is not ${MALLOC_ALIGNMENT}-byte aligned`;
            break;
          }
          const clash = insertLive(live, ends, p, o.bytes, o.id);
          if (clash !== undefined) {
            outcome = `${trace.path}:${o.line}: block ${o.id} [0x${p.toString(16)}, +${o.bytes}) overlaps ${clash}`;
            break;
          }
          if (o.op === OP_REALLOC && !verify(o.id, p, Math.min(oldSize, o.bytes))) {
            outcome = `${trace.path}:${o.line}: realloc of block ${o.id} lost its payload`;
            break;
          }
          ptr[o.id] = p;
          size[o.id] = o.bytes;
          payload += o.bytes - (o.op === OP_REALLOC ? oldSize : 0);
          fill(o.id, p, o.op === OP_REALLOC ? Math.min(oldSize, o.bytes) : 0, o.bytes);
        }
        if (payload > peakPayload) peakPayload = payload;
        const held = footprint.bytes();
        if (held > heapHwm) heapHwm = held;
        const reported = alloc.stats().heapBytes;
        if (reported > reportedHwm) reportedHwm = reported;
        if ((i & 15) === 15) yield;
      }
    } catch (err) {
      if (!(err instanceof MallocAbort)) throw err;
      outcome = `abort: ${err.message}`;
    }
    hostSeconds = (performance.now() - t0) / 1000;
    return 0;
  };
  const m = bootKernel(buildMachine({ memoryBytes: options.memoryBytes ?? 256 * 1024 * 1024, seed }), {
    loader: (path) => ({ path, main: driver, textBytes: 65536, dataBytes: 8192, bssBytes: 8192 }),
    tunables: { overcommitMemory: 1 },
  });
  let tlbMisses = 0;
  let checkedFaults = { minor: 0, major: 0 };
  let opsPerSecond = 0;
  let speedRuns = 0;
  let speedCost = { accessesPerOp: 0, tlbMissesPerOp: 0, walksPerOp: 0, faultsPerOp: 0 };
  const counters = (pid: number): SpeedCounters => {
    const task = m.kernel.tasks.get(pid);
    return {
      accesses: m.mmu.accesses,
      tlbMisses: m.mmu.dtlb.misses,
      walks: m.mmu.walks,
      faults: task === undefined ? 0 : task.minFlt + task.majFlt,
    };
  };
  // The driver: the checked replay, then the speed runs (K-best), each in a forked child that
  // starts a heap of its own.
  function* driver(ctx: UserContext): Generator<void, number, void> {
    const libc = new Libc(ctx);
    const status = yield* main(ctx, libc);
    tlbMisses = m.mmu.dtlb.misses;
    const self = m.kernel.tasks.get(ctx.sys.getpid())!;
    checkedFaults = { minor: self.minFlt, major: self.majFlt };
    const fastest: number[] = []; // the K shortest runs' seconds, shortest first
    const kBest = options.speed === 'k-best';
    const maxRuns = options.speed === 'none' ? 0 : kBest ? MAX_SPEED_RUNS : SPEED_K;
    let spent = 0;
    const done = (): boolean =>
      speedRuns >= maxRuns ||
      (kBest && (kBestConverged(fastest) || (speedRuns >= SPEED_K && spent > SPEED_BUDGET_SECONDS)));
    while (outcome === 'ok' && !done()) {
      let seconds = 0;
      const pid = ctx.sys.fork(
        speedRun(trace, {
          allocatorName,
          factory: options.factory,
          counters,
          done: (s, cost) => {
            seconds = s;
            speedCost = cost;
          },
        }),
      );
      if (pid < 0) break;
      yield* ctx.sys.wait4(pid, 0, 0);
      speedRuns++;
      if (seconds <= 0) break; // the allocator failed where the checked replay did not
      spent += seconds;
      fastest.push(seconds);
      fastest.sort((a, b) => a - b);
      fastest.length = Math.min(fastest.length, SPEED_K);
    }
    if (fastest.length > 0) opsPerSecond = trace.ops.length / fastest[0]!;
    if (outcome.startsWith('abort')) return status; // no leak check over a corrupt heap
    return libc.exit(status);
  }
  const task = m.kernel.spawn('/usr/bin/mdriver', ['mdriver']);
  if (typeof task === 'number') throw new Error(`malloc-replay: cannot start the driver (errno ${-task})`);
  m.kernel.run();
  m.shutdown();
  if (task.waitStatus !== 0 && outcome === 'ok')
    outcome = `the driver process ended: ${m.kernel.describeEnd(task)} ${m.kernel.log.at(-1)?.text ?? ''}`;
  return {
    trace: trace.path,
    allocator: allocatorName,
    operations: trace.ops.length,
    outcome,
    peakPayloadBytes: peakPayload,
    heapHighWaterBytes: heapHwm,
    reportedHeapHighWaterBytes: reportedHwm,
    utilization: heapHwm > 0 ? peakPayload / heapHwm : 0,
    opsPerSecond: outcome === 'ok' ? opsPerSecond : 0,
    checkedOpsPerSecond: hostSeconds > 0 ? trace.ops.length / hostSeconds : 0,
    speedRuns,
    speedCost,
    minorFaults: checkedFaults.minor,
    majorFaults: checkedFaults.major,
    tlbMisses,
    leakReport: task.stdout,
  };
}

/**
 * The bytes an allocator holds as the kernel sees its process (the replay's heap high-water
 * mark is sampled from here, never from the allocator's word):
 *
 *   bytes = (brk - start_brk) + |mapped now - mapped at the start - [brk heap pages]| - libc's own
 *
 * The brk extent counts to the byte (an allocator may move the break by any amount); every
 * other byte mapped since the replay began counts (anonymous or not: the allocator's mappings,
 * and any other memory it got from the kernel), except libc's static storage up to its first
 * STATIC_DATA_BYTES piece: a C library's own .data and .bss, where ptmalloc's arena lives as
 * glibc's main_arena does, outside the heap that glibc's figures in the traces' README measure.
 * Static storage past that piece counts like any mapping.
 */
export class KernelFootprint {
  private readonly mm: AddressSpace;
  private readonly libc: Libc;
  /** The process's mappings when the replay began, [start, end), in address order. */
  private readonly baseline: Array<[number, number]>;

  /** Take the baseline: call before the allocator makes its first mapping. */
  constructor(mm: AddressSpace, libc: Libc) {
    this.mm = mm;
    this.libc = libc;
    this.baseline = mm.vmas.all().map((v): [number, number] => [v.start, v.end]);
  }

  bytes(): number {
    const mm = this.mm;
    const page = mm.pageBytes;
    const heapPages: [number, number] = [
      Math.floor(mm.startBrk / page) * page,
      Math.ceil(mm.brk / page) * page,
    ];
    const known = union([...this.baseline, heapPages]);
    const pieces = this.libc.staticRegions();
    let mapped = 0;
    let libcStatic = 0;
    for (const v of mm.vmas.all()) {
      mapped += v.end - v.start;
      for (const [s, e] of known) mapped -= overlap(v.start, v.end, s, e);
      for (const [s, e] of pieces) libcStatic += overlap(v.start, v.end, s, Math.ceil(e / page) * page);
    }
    const libcOwn = Math.min(libcStatic, Math.ceil(STATIC_DATA_BYTES / page) * page);
    return mm.brk - mm.startBrk + mapped - libcOwn;
  }
}

/** Bytes [a, b) and [c, d) share. */
function overlap(a: number, b: number, c: number, d: number): number {
  return Math.max(0, Math.min(b, d) - Math.max(a, c));
}

/** The union of ranges [start, end), as disjoint ranges in address order. */
function union(ranges: Array<[number, number]>): Array<[number, number]> {
  const sorted = ranges.filter(([s, e]) => e > s).sort((x, y) => x[0] - y[0]);
  const out: Array<[number, number]> = [];
  for (const [s, e] of sorted) {
    const last = out.at(-1);
    if (last !== undefined && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/** The lab driver's K-best parameters (fcyc's K, epsilon and sample limit). */
const SPEED_K = 3;
const SPEED_EPSILON = 0.01;
const MAX_SPEED_RUNS = 20;
/** Host seconds of speed runs after which K-best stops at K runs (slow allocators on long traces). */
const SPEED_BUDGET_SECONDS = 3;

/** Whether the K fastest runs' seconds (shortest first) agree within SPEED_EPSILON. */
export function kBestConverged(fastest: readonly number[]): boolean {
  return fastest.length === SPEED_K && fastest[SPEED_K - 1]! <= (1 + SPEED_EPSILON) * fastest[0]!;
}

/** The machine's counters as a speed run reads them (the faults are the running task's). */
interface SpeedCounters {
  accesses: number;
  tlbMisses: number;
  walks: number;
  faults: number;
}

interface SpeedRunOptions {
  allocatorName: string;
  factory: ((libc: Libc) => Allocator) | undefined;
  counters: (pid: number) => SpeedCounters;
  done: (seconds: number, cost: MallocReplayResult['speedCost']) => void;
}

/**
 * The lab driver's speed run: the trace's calls alone (no fill, no checks) with a new
 * allocator; its host seconds and its cost per operation go to `done`. Exit status 1 when the
 * allocator fails.
 */
function speedRun(trace: MallocTrace, options: SpeedRunOptions): UserMain {
  const { allocatorName, factory, counters, done } = options;
  return function* (ctx) {
    const libc = new Libc(ctx);
    const alloc = factory !== undefined ? factory(libc) : createAllocator(allocatorName, libc);
    const ptr = new Float64Array(trace.ids);
    const ops = trace.ops;
    const pid = ctx.sys.getpid();
    const before = counters(pid);
    const t0 = performance.now();
    try {
      for (let i = 0; i < ops.length; i++) {
        const o = ops[i]!;
        if (o.op === OP_FREE) alloc.free(ptr[o.id]!);
        else {
          const p = o.op === OP_ALLOC ? alloc.malloc(o.bytes) : alloc.realloc(ptr[o.id]!, o.bytes);
          if (p === 0) return 1;
          ptr[o.id] = p;
        }
        if ((i & 15) === 15) yield;
      }
    } catch (err) {
      if (!(err instanceof MallocAbort)) throw err;
      return 1;
    }
    const seconds = (performance.now() - t0) / 1000;
    const after = counters(pid);
    const n = Math.max(1, ops.length);
    done(seconds, {
      accessesPerOp: (after.accesses - before.accesses) / n,
      tlbMissesPerOp: (after.tlbMisses - before.tlbMisses) / n,
      walksPerOp: (after.walks - before.walks) / n,
      faultsPerOp: (after.faults - before.faults) / n,
    });
    return 0;
  };
}

/** The seeded fill byte of block `id`. */
function byteFor(seed: number, id: number): number {
  const x = (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(id + 1, 0x85ebca6b)) >>> 0;
  return (x ^ (x >>> 15) ^ (x >>> 7)) & 0xff;
}

/** Insert block [p, p+n) among the live blocks; a description of the block it overlaps, if any. */
function insertLive(
  live: number[],
  ends: Map<number, { end: number; id: number }>,
  p: number,
  n: number,
  id: number,
): string | undefined {
  let lo = 0;
  let hi = live.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (live[mid]! < p) lo = mid + 1;
    else hi = mid;
  }
  const end = p + Math.max(1, n);
  const prev = lo > 0 ? live[lo - 1]! : undefined;
  if (prev !== undefined && ends.get(prev)!.end > p)
    return `block ${ends.get(prev)!.id} at 0x${prev.toString(16)}`;
  const next = lo < live.length ? live[lo]! : undefined;
  if (next !== undefined && next < end) return `block ${ends.get(next)!.id} at 0x${next.toString(16)}`;
  live.splice(lo, 0, p);
  ends.set(p, { end, id });
  return undefined;
}

function removeLive(live: number[], p: number): void {
  let lo = 0;
  let hi = live.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (live[mid]! < p) lo = mid + 1;
    else hi = mid;
  }
  if (live[lo] === p) live.splice(lo, 1);
}
