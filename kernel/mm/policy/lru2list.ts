/**
 * Linux's two-list LRU (mm/vmscan.c, mm/workingset.c), simplified to anonymous pages:
 *
 * - New pages enter the head of the inactive list. A page coming back from swap whose refault
 *   distance (evictions since it left) is at most the active list's size goes straight to the
 *   active head: it would have stayed resident had the inactive list been that much longer
 *   (workingset activation, counted in refaultActivations, not in activations).
 * - Reclaim first keeps the inactive list at least as long as the active one: pages leave the
 *   active tail for the inactive head (deactivation), except those referenced since the last
 *   look, whose bit is cleared and which rotate to the active head.
 * - Then it scans the inactive tail: an unreferenced page is the victim; a referenced page
 *   without PG_referenced gets it and rotates to the inactive head; a referenced page that
 *   already has PG_referenced (referenced on two looks) is promoted to the active head.
 *
 * Both lists are FrameLists whose FrameList head is the list's *tail* (the oldest page, where
 * scans start) and whose FrameList tail is the list's head (the newest page).
 *
 *   active.size + inactive.size == resident pages;  active ∩ inactive == ∅
 *   pgReferenced[pfn] == 1  =>  pfn is on the inactive list
 *   activations == promotions; deactivations == active -> inactive moves
 */
import { panic } from '../../lib/panic.ts';
import { FrameList } from './framelist.ts';
import type { LoadInfo, PolicyOptions, ReplacementPolicy, VictimView } from './types.ts';

export class Lru2ListPolicy implements ReplacementPolicy {
  readonly name = 'lru-2list';
  readonly wantsEveryReference = false;
  readonly tickCycles = 0;
  private readonly active: FrameList;
  private readonly inactive: FrameList;
  /** PG_referenced: the page was found referenced once on the inactive list. */
  private readonly pgReferenced: Uint8Array;
  /** Inactive pages promoted for being referenced on two looks (pgactivate). */
  activations = 0;
  /** Active pages moved to the inactive list (pgdeactivate). */
  deactivations = 0;
  /** Refaults activated at once (workingset_activate). */
  refaultActivations = 0;

  constructor(options: PolicyOptions) {
    this.active = new FrameList(options.frameCount);
    this.inactive = new FrameList(options.frameCount);
    this.pgReferenced = new Uint8Array(options.frameCount);
  }

  /** New page: inactive head, or active head for a refault within the active list's size. */
  onLoad(pfn: number, info: Readonly<LoadInfo>): void {
    this.pgReferenced[pfn] = 0;
    if (info.refaultDistance !== undefined && info.refaultDistance <= this.active.size) {
      this.active.pushBack(pfn);
      this.refaultActivations++;
    } else {
      this.inactive.pushBack(pfn);
    }
  }

  onRemove(pfn: number): void {
    if (this.active.has(pfn)) this.active.remove(pfn);
    else this.inactive.remove(pfn);
    this.pgReferenced[pfn] = 0;
  }

  onEvicted(pfn: number): void {
    this.onRemove(pfn);
  }

  onReference(): void {}

  onTick(): void {}

  /**
   * Balance the lists, then scan the inactive list from its tail (oldest) for an unreferenced
   * eligible page. Ineligible pages keep their place. When every eligible inactive page was
   * referenced twice (all promoted), the oldest eligible page of either list goes. -1 when no
   * resident page is eligible. O(1) amortized: each scanned page is flagged, promoted or chosen.
   */
  selectVictim(view: VictimView): number {
    this.balance(view);
    const victim = this.scanInactive(view);
    return victim !== -1 ? victim : this.oldestEligible(view);
  }

  /**
   * Second chance on the inactive list. A page is looked at most twice in one scan: a
   * referenced page without PG_referenced is flagged and rotated to the head, so the scan meets
   * it again with its bit clear and takes it, unless it was referenced again (promoted).
   */
  private scanInactive(view: VictimView): number {
    const l = this.inactive;
    let p = l.head;
    for (let steps = 2 * l.size + 1; steps > 0 && p !== -1; steps--) {
      let next = l.next[p]!;
      if (!view.eligible(p)) {
        p = next;
        continue;
      }
      if (!view.testAndClearReferenced(p)) return p;
      if (this.pgReferenced[p] === 1) {
        this.promote(p);
      } else {
        this.pgReferenced[p] = 1;
        l.moveToBack(p);
        if (next === -1) next = p; // it was the last page: the scan comes back to it
      }
      p = next;
    }
    return -1;
  }

  /** Inactive page referenced on two looks: to the active head. */
  private promote(pfn: number): void {
    this.pgReferenced[pfn] = 0;
    this.inactive.remove(pfn);
    this.active.pushBack(pfn);
    this.activations++;
  }

  /** The oldest eligible inactive page, else the oldest eligible active one, else -1. */
  private oldestEligible(view: VictimView): number {
    const i = this.inactive;
    for (let p = i.head; p !== -1; p = i.next[p]!) if (view.eligible(p)) return p;
    const a = this.active;
    for (let p = a.head; p !== -1; p = a.next[p]!) if (view.eligible(p)) return p;
    return -1;
  }

  /** Deactivate from the active tail until the inactive list is at least as long. */
  private balance(view: VictimView): void {
    const a = this.active;
    let budget = a.size;
    while (this.inactive.size < a.size && a.head !== -1 && budget-- > 0) {
      const p = a.head;
      if (view.testAndClearReferenced(p)) {
        a.moveToBack(p);
        continue;
      }
      a.remove(p);
      this.inactive.pushBack(p);
      this.deactivations++;
    }
  }

  activity(): { activations: number; deactivations: number; refaultActivations: number } {
    return {
      activations: this.activations,
      deactivations: this.deactivations,
      refaultActivations: this.refaultActivations,
    };
  }

  isActive(pfn: number): boolean {
    return this.active.has(pfn);
  }

  listSizes(): { active: number; inactive: number } {
    return { active: this.active.size, inactive: this.inactive.size };
  }

  /** The active list from its tail (oldest) to its head, then the inactive list likewise. */
  order(): number[] {
    return [...this.active.toArray(), ...this.inactive.toArray()];
  }

  checkInvariants(): void {
    this.active.check('lru-2list active');
    this.inactive.check('lru-2list inactive');
    for (let p = 0; p < this.pgReferenced.length; p++) {
      if (this.active.has(p) && this.inactive.has(p)) panic(`lru-2list: frame ${p} is on both lists`);
      if (this.pgReferenced[p] === 1 && !this.inactive.has(p))
        panic(`lru-2list: frame ${p} has PG_referenced but is not on the inactive list`);
    }
  }
}
