/**
 * Linux's two-list LRU (mm/vmscan.c, mm/workingset.c), simplified to anonymous pages:
 *
 * - New pages enter the head of the inactive list; a page coming back from swap whose refault
 *   distance (evictions since it left) is at most the active list's size goes straight to the
 *   active list: it would have stayed resident with a bigger inactive list (workingset
 *   activation).
 * - Reclaim first keeps the inactive list at least as long as the active one: pages leave the
 *   active tail for the inactive head (deactivation), except those referenced since the last
 *   look, which rotate to the active head.
 * - Then it scans the inactive tail: an unreferenced page is the victim; a page referenced for
 *   the first time gets its software referenced flag and rotates to the inactive head; a page
 *   referenced again while flagged is promoted to the active head (second chance, twice).
 *
 *   active.size + inactive.size == resident pages;  flagged pages are on the inactive list
 */
import { panic } from '../../lib/panic.ts';
import { FrameList } from './framelist.ts';
import type { LoadInfo, PolicyOptions, ReplacementPolicy, VictimView } from './types.ts';

export class Lru2ListPolicy implements ReplacementPolicy {
  readonly name = 'lru-2list';
  readonly wantsEveryReference = false;
  readonly tickCycles = 0;
  /** Lists run tail (oldest, scanned first) ... head (newest): FrameList head = tail end here. */
  private readonly active: FrameList;
  private readonly inactive: FrameList;
  private readonly referencedFlag: Uint8Array;
  activations = 0;
  deactivations = 0;
  refaultActivations = 0;

  constructor(options: PolicyOptions) {
    this.active = new FrameList(options.frameCount);
    this.inactive = new FrameList(options.frameCount);
    this.referencedFlag = new Uint8Array(options.frameCount);
  }

  onLoad(pfn: number, info: Readonly<LoadInfo>): void {
    this.referencedFlag[pfn] = 0;
    if (info.refaultDistance !== undefined && info.refaultDistance <= this.active.size) {
      this.active.pushBack(pfn);
      this.refaultActivations++;
      this.activations++;
    } else {
      this.inactive.pushBack(pfn);
    }
  }

  onRemove(pfn: number): void {
    if (this.active.has(pfn)) this.active.remove(pfn);
    else this.inactive.remove(pfn);
    this.referencedFlag[pfn] = 0;
  }

  onEvicted(pfn: number): void {
    this.onRemove(pfn);
  }

  onReference(): void {}

  onTick(): void {}

  selectVictim(view: VictimView): number {
    this.balance(view);
    const l = this.inactive;
    const limit = 2 * l.size + 1;
    for (let steps = 0; steps < limit && l.head !== -1; steps++) {
      const p = l.head; // the oldest inactive page
      if (!view.eligible(p)) {
        l.moveToBack(p);
        continue;
      }
      if (!view.testAndClearReferenced(p)) return p;
      if (this.referencedFlag[p] === 1) {
        this.referencedFlag[p] = 0;
        l.remove(p);
        this.active.pushBack(p);
        this.activations++;
      } else {
        this.referencedFlag[p] = 1;
        l.moveToBack(p);
      }
    }
    // Everything inactive was referenced (or ineligible): fall back to the oldest eligible page.
    for (const list of [this.inactive, this.active]) {
      for (let p = list.head; p !== -1; p = list.next[p]!) if (view.eligible(p)) return p;
    }
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

  listSizes(): { active: number; inactive: number } {
    return { active: this.active.size, inactive: this.inactive.size };
  }

  /** Active (oldest first), then inactive (oldest first). */
  order(): number[] {
    return [...this.active.toArray(), ...this.inactive.toArray()];
  }

  checkInvariants(): void {
    this.active.check('lru-2list active');
    this.inactive.check('lru-2list inactive');
    for (let p = this.active.head; p !== -1; p = this.active.next[p]!) {
      if (this.inactive.has(p)) panic(`lru-2list: frame ${p} is on both lists`);
      if (this.referencedFlag[p] === 1)
        panic(`lru-2list: active frame ${p} carries the inactive referenced flag`);
    }
  }
}
