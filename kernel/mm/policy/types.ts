/**
 * The page-replacement policy interface. Mechanism and policy are apart: the reclaim code
 * (reclaim.ts) finds that a frame must be freed, asks the policy which resident page to evict,
 * and does the eviction (swap-out, writeback, drop); the policy only keeps its own bookkeeping
 * and picks.
 *
 * What a policy is told, and when:
 * - onLoad(pfn, info): a page became resident in frame pfn (a fault loaded it); `info` says
 *   whether the access was a write and, for a page that was evicted before and comes back (a
 *   refault), its refault distance: the number of evictions since it left (Linux's workingset
 *   shadow entries). The info object is reused: read it, do not keep it.
 * - onRemove(pfn): the page left memory other than by this policy's choice (unmapped, freed,
 *   its process exited). Never called for the victim a policy chose (that is onEvicted).
 * - onEvicted(pfn): the victim the policy chose was evicted.
 * - onReference(pfn, write): every reference, only to policies with `wantsEveryReference`
 *   (exact LRU, and OPT/LFU-style teaching policies). Hardware does not offer this; the emulator
 *   can, at a cost.
 * - onTick(): every `tickCycles` of emulated time, for policies that age (aging, NRU).
 * - selectVictim(view): pick a resident frame to evict among those `view.eligible` accepts.
 *   The view exposes what hardware offers: the accessed (referenced) and dirty bits of the
 *   page-table entries that map the frame, which the policy may test and clear; and for trace
 *   replays the future (OPT, UNOPT). Return -1 only when no eligible frame exists.
 *
 *   a policy's resident set == the frames it was told about by onLoad and not yet removed
 */
export interface VictimView {
  /** May this frame be chosen (scope: the faulting process, a group, or any)? */
  eligible(pfn: number): boolean;
  /** Accessed bit of the frame's mappings (OR over every PTE that maps it). */
  isReferenced(pfn: number): boolean;
  /** Test and clear the accessed bits (and the frame's software referenced bit). */
  testAndClearReferenced(pfn: number): boolean;
  /** Dirty bit of the frame's mappings (or the frame's dirty flag). */
  isDirty(pfn: number): boolean;
  /** Emulated time now (cycles). */
  now(): number;
  /**
   * Position of the next reference to the page in `pfn` in the future of a trace replay, or
   * Infinity if never referenced again; undefined when the future is unknown (not a replay).
   */
  nextUse(pfn: number): number | undefined;
  /** Seeded random numbers (random policy). */
  random(bound: number): number;
}

export interface LoadInfo {
  write: boolean;
  /** Evictions between this page's eviction and its return; undefined on a first load. */
  refaultDistance: number | undefined;
}

export interface ReplacementPolicy {
  readonly name: string;
  readonly wantsEveryReference: boolean;
  /** 0 when the policy does not age. */
  readonly tickCycles: number;
  /**
   * 'required' for a policy whose selectVictim reads view.nextUse (opt, unopt): a workload's
   * replay process then gives it its trace's future. `vmlab replay` gives the future to every
   * policy, whatever it says here. Absent: 'unused'.
   */
  readonly future?: 'required' | 'unused';
  onLoad(pfn: number, info: Readonly<LoadInfo>): void;
  onRemove(pfn: number): void;
  onEvicted(pfn: number): void;
  onReference(pfn: number, write: boolean): void;
  onTick(view: VictimView): void;
  selectVictim(view: VictimView): number;
  /**
   * Sizes of the active and inactive lists, for policies that keep two (lru-2list); others
   * leave it out and count every resident page as inactive in /proc/meminfo.
   */
  listSizes?(): { active: number; inactive: number };
  /** Is frame `pfn` on the active list? (Two-list policies; for meminfo's Active/Inactive.) */
  isActive?(pfn: number): boolean;
  /** Activation counters of two-list policies (pgactivate, pgdeactivate, workingset_activate). */
  activity?(): { activations: number; deactivations: number; refaultActivations: number };
  /** The resident frames in the policy's order (for traces: FIFO order, LRU -> MRU, clock order). */
  order(): number[];
  /** Panics (message starting with the policy's name) when its structures are inconsistent. */
  checkInvariants(): void;
}

export interface PolicyOptions {
  frameCount: number;
  /** For aging: counter bits; default 8. */
  agingBits?: number;
  /** For aging and NRU: tick period in cycles. */
  tickCycles?: number;
  /** For wsclock: working-set window tau in cycles. */
  wsWindowCycles?: number;
  /** For opt: which of several pages never used again goes first; default 'earliest'. */
  optTie?: OptTie;
}

/**
 * OPT's tie rule among the eligible pages never used again (pages used again are never tied:
 * each future position references one page):
 * - earliest: the page loaded earliest (vmlab's default; FIFO among the dead pages);
 * - latest: the page loaded last (OSTEP's paging-policy.py, whose scan keeps the last of equals);
 * - lru: the least recently used; mru: the most recently used.
 */
export type OptTie = 'earliest' | 'latest' | 'lru' | 'mru';

/** Every OPT tie rule, the default first. */
export const OPT_TIES: readonly OptTie[] = ['earliest', 'latest', 'lru', 'mru'];

export type PolicyFactory = (options: PolicyOptions) => ReplacementPolicy;
