/**
 * A tiny page-replacement simulator for policy tests: a resident limit of N frames, a
 * reference string of page numbers (writes marked, ticks marked), and a fake VictimView whose
 * reference and dirty bits behave as hardware's do (set on access, cleared only when a policy
 * tests and clears them; the dirty bit until the page is evicted).
 *
 * - A fault is a reference to a non-resident page (compulsory faults included); a writeback is
 *   the eviction of a page written since it was loaded.
 * - Time (view.now) is the number of references so far; a tick does not advance it.
 * - The future (view.nextUse) is the position of the page's next reference in the string.
 * - Refault distances follow the kernel (kernel/proc/kernel.ts swapIn): a page evicted dirty,
 *   or evicted clean after coming back from swap, keeps a swap slot and a shadow (the eviction
 *   count); when it comes back, its distance is the evictions since, counting the one that made
 *   room for it. A clean page never written is dropped and comes back as a new page.
 *   `shadows: 'every'` gives every evicted page a shadow (Linux's file pages).
 * - Frame numbers: with `frames: 'victim'` the new page goes into the victim's frame; with
 *   `frames: 'other'` the machine has one spare frame and free frames are handed out in FIFO
 *   order, so after an eviction the new page always lands in a frame other than the victim's.
 *   Policies must not care.
 */
import { createPolicy } from '../../kernel/mm/policy/index.ts';
import type { LoadInfo, ReplacementPolicy, VictimView } from '../../kernel/mm/policy/types.ts';

export interface Ref {
  kind: 'ref';
  page: number;
  write: boolean;
}

/** onTick, between references (NRU and aging). */
export interface Tick {
  kind: 'tick';
}

export type SimStep = Ref | Tick;

export interface SimOptions {
  /** Also tick after every `tickEvery` references. */
  tickEvery?: number;
  /** Check the policy's invariants and its resident set after every step (default on). */
  check?: boolean;
  frames?: 'victim' | 'other';
  shadows?: 'swap' | 'every';
  /** WSClock's tau, in references; default 4. */
  wsWindowCycles?: number;
  agingBits?: number;
}

export interface SimResult {
  faults: number;
  writebacks: number;
  /** The page evicted at each reference (null: none), ticks left out. */
  evicted: Array<number | null>;
  /** The resident pages at the end, in the policy's order(). */
  order: number[];
  policy: ReplacementPolicy;
}

/** `1,2,3w,t,4`: pages, `w` marks a write, `t` a tick. */
export function parseRefs(text: string): SimStep[] {
  return text
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '')
    .map((t): SimStep => (t === 't' ? { kind: 'tick' } : ref(Number.parseInt(t, 10), t.endsWith('w'))));
}

export function ref(page: number, write = false): Ref {
  return { kind: 'ref', page, write };
}

/** Reads of `pages`, in order. */
export function reads(pages: readonly number[]): Ref[] {
  return pages.map((page) => ref(page));
}

/** For each reference, the position of the next reference to its page (Infinity: none). */
function nextUses(steps: readonly SimStep[]): Float64Array {
  const next = new Float64Array(steps.length).fill(Number.POSITIVE_INFINITY);
  const seen = new Map<number, number>();
  for (let i = steps.length - 1; i >= 0; i--) {
    const s = steps[i]!;
    if (s.kind !== 'ref') continue;
    next[i] = seen.get(s.page) ?? Number.POSITIVE_INFINITY;
    seen.set(s.page, i);
  }
  return next;
}

/** Run `steps` through policy `name` with a resident limit of `limit` frames. */
export function simulate(
  name: string,
  steps: readonly SimStep[],
  limit: number,
  options: SimOptions = {},
): SimResult {
  const frameCount = options.frames === 'other' ? limit + 1 : limit;
  const policy = createPolicy(name, {
    frameCount,
    tickCycles: 1,
    wsWindowCycles: options.wsWindowCycles ?? 4,
    agingBits: options.agingBits,
  });
  const pageOf = new Int32Array(frameCount).fill(-1);
  const frameOf = new Map<number, number>();
  const free = Array.from({ length: frameCount }, (_, pfn) => pfn);
  const referenced = new Uint8Array(frameCount);
  const dirty = new Uint8Array(frameCount);
  const fromSwap = new Uint8Array(frameCount);
  const shadow = new Map<number, number>();
  const nextOfPage = new Map<number, number>();
  const next = nextUses(steps);
  let now = 0;
  let seed = 12345;
  const view: VictimView = {
    eligible: (pfn) => pageOf[pfn] !== -1,
    isReferenced: (pfn) => referenced[pfn] === 1,
    testAndClearReferenced: (pfn) => {
      const r = referenced[pfn] === 1;
      referenced[pfn] = 0;
      return r;
    },
    isDirty: (pfn) => dirty[pfn] === 1,
    now: () => now,
    nextUse: (pfn) => nextOfPage.get(pageOf[pfn]!) ?? Number.POSITIVE_INFINITY,
    random: (bound) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % bound;
    },
  };
  const info: LoadInfo = { write: false, refaultDistance: undefined };
  let faults = 0;
  let writebacks = 0;
  let evictions = 0;
  const evicted: Array<number | null> = [];

  const evict = (): void => {
    const victim = policy.selectVictim(view);
    if (victim < 0 || victim >= frameCount || pageOf[victim] === -1)
      throw new Error(`${name}: victim ${victim} with ${frameOf.size} resident`);
    const page = pageOf[victim]!;
    if (dirty[victim] === 1) writebacks++;
    if (dirty[victim] === 1 || fromSwap[victim] === 1 || options.shadows === 'every')
      shadow.set(page, evictions);
    else shadow.delete(page);
    evictions++;
    frameOf.delete(page);
    pageOf[victim] = -1;
    referenced[victim] = 0;
    dirty[victim] = 0;
    policy.onEvicted(victim);
    free.push(victim);
    evicted[evicted.length - 1] = page;
  };

  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]!;
    if (step.kind === 'tick') {
      policy.onTick(view);
    } else {
      now++;
      nextOfPage.set(step.page, next[i]!);
      evicted.push(null);
      let pfn = frameOf.get(step.page);
      if (pfn === undefined) {
        faults++;
        if (frameOf.size === limit) evict();
        pfn = free.shift()!;
        const sh = shadow.get(step.page);
        pageOf[pfn] = step.page;
        frameOf.set(step.page, pfn);
        fromSwap[pfn] = sh === undefined ? 0 : 1;
        info.write = step.write;
        info.refaultDistance = sh === undefined ? undefined : evictions - sh;
        policy.onLoad(pfn, info);
      }
      referenced[pfn] = 1;
      if (step.write) dirty[pfn] = 1;
      if (policy.wantsEveryReference) policy.onReference(pfn, step.write);
      if (options.tickEvery !== undefined && now % options.tickEvery === 0) policy.onTick(view);
    }
    if (options.check !== false) checkResidentSet(policy, pageOf);
  }
  return { faults, writebacks, evicted, order: policy.order().map((pfn) => pageOf[pfn]!), policy };
}

/** The policy's invariants, and its order() holds each resident frame exactly once. */
function checkResidentSet(policy: ReplacementPolicy, pageOf: Int32Array): void {
  policy.checkInvariants();
  const order = policy.order();
  const seen = new Uint8Array(pageOf.length);
  for (const pfn of order) {
    if (pageOf[pfn] === -1 || seen[pfn] === 1) throw new Error(`${policy.name}: order() ${order} is wrong`);
    seen[pfn] = 1;
  }
  const resident = pageOf.reduce((n, page) => n + (page === -1 ? 0 : 1), 0);
  if (order.length !== resident)
    throw new Error(`${policy.name}: order() has ${order.length} of ${resident}`);
}

/**
 * Faults by plain array implementations of the textbook rules, the model the policies are
 * checked against: FIFO (a queue), LRU (an array reordered on every reference), OPT (farthest
 * next use, ties to the earliest loaded) and clock (OSTEP's slots with a hand: pages fill slots
 * 0..n-1 in order, the hand starts at slot 0; a victim's slot takes the new page, bit set, and
 * the hand moves one past it).
 */
export function modelFaults(
  name: 'fifo' | 'lru' | 'opt' | 'clock',
  pages: readonly number[],
  n: number,
): number {
  const resident: number[] = [];
  const bit: number[] = [];
  let hand = 0;
  let faults = 0;
  for (let i = 0; i < pages.length; i++) {
    const page = pages[i]!;
    const at = resident.indexOf(page);
    if (at >= 0) {
      if (name === 'lru') resident.push(...resident.splice(at, 1));
      bit[at] = 1;
      continue;
    }
    faults++;
    if (resident.length < n) {
      resident.push(page);
      bit.push(1);
    } else if (name === 'clock') {
      while (bit[hand] === 1) {
        bit[hand] = 0;
        hand = (hand + 1) % n;
      }
      resident[hand] = page;
      bit[hand] = 1;
      hand = (hand + 1) % n;
    } else {
      resident.splice(name === 'opt' ? farthest(resident, pages, i) : 0, 1);
      resident.push(page);
    }
  }
  return faults;
}

/** Index in `resident` of the page used again farthest after position `i` (first of ties). */
function farthest(resident: readonly number[], pages: readonly number[], i: number): number {
  let best = 0;
  let bestNext = -1;
  resident.forEach((page, k) => {
    const j = pages.indexOf(page, i + 1);
    const next = j < 0 ? Number.POSITIVE_INFINITY : j;
    if (next > bestNext) {
      best = k;
      bestNext = next;
    }
  });
  return best;
}
