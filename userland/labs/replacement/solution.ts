/**
 * Lab 2, a reference solution: the enhanced second-chance clock (Stallings, "Operating Systems",
 * the clock policy with use and modify bits; Silberschatz's "enhanced second-chance algorithm").
 *
 * Frames sit in a circle of slots with a hand. A victim is sought in up to four sweeps that
 * start at the hand, each going once round the circle:
 *   1. the first frame not referenced and not dirty (0,0), changing no bits;
 *   2. the first frame not referenced and dirty (0,1), clearing the reference bit of every
 *      frame passed over;
 *   3 and 4: sweeps 1 and 2 again (after sweep 2 every reference bit is clear).
 * The hand stays on the victim; when it is evicted, its slot becomes a hole that the next
 * loaded page fills, and the hand moves to the slot after it. While no hole waits, a new page
 * goes just behind the hand (the last slot the hand reaches).
 *
 *   slots[i] == -1  <=>  i == hole;   every other slot holds a distinct resident frame
 *   slotOf[pfn] == i  <=>  slots[i] == pfn;   0 <= hand < slots.length, or hand == 0 when empty
 */
import type {
  LoadInfo,
  PolicyOptions,
  ReplacementPolicy,
  VictimView,
} from '../../../kernel/mm/policy/types.ts';

const NO_SLOT = -1;

export default class EnhancedSecondChance implements ReplacementPolicy {
  readonly name = 'esc';
  readonly wantsEveryReference = false;
  readonly tickCycles = 0;
  /** Frames in circle order; NO_SLOT marks the hole. */
  private readonly slots: number[] = [];
  private readonly slotOf: Int32Array;
  private hand = 0;
  private hole = NO_SLOT;

  constructor(options: PolicyOptions) {
    this.slotOf = new Int32Array(options.frameCount).fill(NO_SLOT);
  }

  /** Into the last victim's slot, else just behind the hand. */
  onLoad(pfn: number, _info: Readonly<LoadInfo>): void {
    if (this.hole !== NO_SLOT) {
      this.slots[this.hole] = pfn;
      this.slotOf[pfn] = this.hole;
      this.hole = NO_SLOT;
      return;
    }
    this.slots.splice(this.hand, 0, pfn);
    this.renumberFrom(this.hand);
    if (this.slots.length > 1) this.hand++;
  }

  /** A page left by other means: its slot closes. */
  onRemove(pfn: number): void {
    this.closeSlot(this.slotOf[pfn]!);
    this.slotOf[pfn] = NO_SLOT;
  }

  /** The victim left: its slot is the hole (an older hole closes), the hand moves past it. */
  onEvicted(pfn: number): void {
    if (this.hole !== NO_SLOT) this.closeSlot(this.hole);
    const i = this.slotOf[pfn]!;
    this.slots[i] = NO_SLOT;
    this.slotOf[pfn] = NO_SLOT;
    this.hole = i;
    this.hand = (i + 1) % this.slots.length;
  }

  onReference(_pfn: number, _write: boolean): void {}

  onTick(_view: VictimView): void {}

  /** Sweeps 1 and 2, twice; -1 when no eligible frame exists. */
  selectVictim(view: VictimView): number {
    for (let round = 0; round < 2; round++) {
      const clean = this.sweep(view, 'clean');
      if (clean !== -1) return clean;
      const dirty = this.sweep(view, 'dirty');
      if (dirty !== -1) return dirty;
    }
    return -1;
  }

  /** From the hand round the circle (the hole left out). */
  order(): number[] {
    const n = this.slots.length;
    const out: number[] = [];
    for (let k = 0; k < n; k++) {
      const p = this.slots[(this.hand + k) % n]!;
      if (p !== NO_SLOT) out.push(p);
    }
    return out;
  }

  checkInvariants(): void {
    const n = this.slots.length;
    if (n === 0 ? this.hand !== 0 : this.hand < 0 || this.hand >= n)
      throw new Error(`esc: hand ${this.hand} with ${n} slots`);
    if (this.hole !== NO_SLOT && this.slots[this.hole] !== NO_SLOT)
      throw new Error(`esc: hole ${this.hole} holds frame ${this.slots[this.hole]}`);
    this.slots.forEach((p, i) => {
      if (p === NO_SLOT ? i !== this.hole : this.slotOf[p] !== i)
        throw new Error(`esc: slot ${i} holds ${p}, recorded at ${p === NO_SLOT ? '-' : this.slotOf[p]}`);
    });
  }

  /**
   * One sweep round the circle from the hand for an eligible frame that is unreferenced and
   * clean ('clean') or unreferenced and dirty ('dirty'); the 'dirty' sweep clears the reference
   * bit of each eligible frame it passes. The hand is left on the frame found; -1 if none.
   */
  private sweep(view: VictimView, want: 'clean' | 'dirty'): number {
    const n = this.slots.length;
    for (let k = 0; k < n; k++) {
      const i = (this.hand + k) % n;
      const p = this.slots[i]!;
      if (p === NO_SLOT || !view.eligible(p)) continue;
      if (!view.isReferenced(p) && view.isDirty(p) === (want === 'dirty')) {
        this.hand = i;
        return p;
      }
      if (want === 'dirty') view.testAndClearReferenced(p);
    }
    return -1;
  }

  /** Remove slot i from the circle, keeping the hand on the same frame and the hole in place. */
  private closeSlot(i: number): void {
    this.slots.splice(i, 1);
    this.renumberFrom(i);
    if (this.hole !== NO_SLOT && this.hole > i) this.hole--;
    else if (this.hole === i) this.hole = NO_SLOT;
    if (this.hand > i) this.hand--;
    if (this.hand >= this.slots.length) this.hand = 0;
  }

  private renumberFrom(i: number): void {
    for (let j = i; j < this.slots.length; j++) {
      const p = this.slots[j]!;
      if (p !== NO_SLOT) this.slotOf[p] = j;
    }
  }
}
