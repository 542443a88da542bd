/**
 * The cost model: emulated cycles charged for each kind of work. All tunables in one table
 * with their units in the name; `resolveCostModel` checks ranges once.
 *
 * A data access costs tlbLookupCycles + memoryAccessCycles on a TLB hit; a miss adds one
 * memoryAccessCycles per level walked. That is the textbook effective access time:
 *   EAT = h (t_tlb + t_mem) + (1 - h) (t_tlb + (L + 1) t_mem)
 * With a second-level TLB, a first-level miss first pays stlbLookupCycles, and walks only
 * when the second level misses too (h2: its hit rate over first-level misses):
 *   EAT = h (t_tlb + t_mem) + (1 - h) (t_tlb + t_stlb + t_mem + (1 - h2) L t_mem)
 */
export interface CostModel {
  /** Looking an address up in the TLB. */
  tlbLookupCycles: number;
  /** Looking an address up in the second-level TLB, after a first-level miss. */
  stlbLookupCycles: number;
  /** One memory reference: a data access, or reading one page-table entry during a walk. */
  memoryAccessCycles: number;
  /** Entering the kernel for a page fault (before the handler's own work). */
  faultEntryCycles: number;
  /** Entering the kernel for a TLB-refill trap (software-managed TLB). */
  tlbRefillTrapCycles: number;
  /** Entering and leaving the kernel for a system call. */
  syscallCycles: number;
  /** Saving and restoring a process's context. */
  contextSwitchCycles: number;
  /** Copying or clearing one 64-byte line in a range operation. */
  lineCopyCycles: number;
}

export const DEFAULT_COST_MODEL: Readonly<CostModel> = {
  tlbLookupCycles: 1,
  stlbLookupCycles: 7,
  memoryAccessCycles: 10,
  faultEntryCycles: 1000,
  tlbRefillTrapCycles: 40,
  syscallCycles: 300,
  contextSwitchCycles: 2000,
  lineCopyCycles: 4,
};

/** Merge overrides into the defaults, refusing negative or non-integer costs. */
export function resolveCostModel(overrides: Partial<CostModel> = {}): CostModel {
  const out = { ...DEFAULT_COST_MODEL, ...overrides };
  for (const [k, v] of Object.entries(out)) {
    if (!Number.isInteger(v) || v < 0 || v > 1e12) {
      throw new RangeError(`cost.${k}: ${v} is not a whole number of cycles from 0 to 1e12`);
    }
  }
  return out;
}

/**
 * The textbook effective access time for first-level hit rate `h`: one TLB level,
 *   h (t_tlb + t_mem) + (1 - h) (t_tlb + (L + 1) t_mem),
 * or, behind it a second level of hit rate `h2` (over first-level misses),
 *   h (t_tlb + t_mem) + (1 - h) (t_tlb + t_stlb + t_mem + (1 - h2) L t_mem).
 */
export function textbookEat(cost: CostModel, levels: number, h: number, h2: number | null): number {
  const hit = cost.tlbLookupCycles + cost.memoryAccessCycles;
  if (h2 === null) return h * hit + (1 - h) * (hit + levels * cost.memoryAccessCycles);
  return h * hit + (1 - h) * (hit + cost.stlbLookupCycles + (1 - h2) * levels * cost.memoryAccessCycles);
}
