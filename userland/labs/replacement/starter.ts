/**
 * Lab 2: page replacement. Your policy goes here (see docs/labs/replacement.md).
 *
 * Implement the enhanced second-chance clock behind the ReplacementPolicy interface. As given,
 * this file is FIFO over a circle of slots: it runs (try `vmlab replay ... --policy-file` on it),
 * but it ignores the reference and dirty bits, so the grader fails it.
 *
 * What to keep: the slots, the hand and the hole (a victim's slot that the next load fills).
 * What to write: selectVictim (the four sweeps), and whatever bookkeeping it needs.
 */
import type { LoadInfo, ReplacementPolicy, VictimView } from '../../../kernel/mm/policy/types.ts';

const NO_SLOT = -1;

export default class MyPolicy implements ReplacementPolicy {
  readonly name = 'my-policy';
  readonly wantsEveryReference = false;
  readonly tickCycles = 0;
  /** Frames in circle order; NO_SLOT marks the hole. */
  private readonly slots: number[] = [];
  private hand = 0;
  private hole = NO_SLOT;

  /** Into the last victim's slot, else just behind the hand. */
  onLoad(pfn: number, _info: Readonly<LoadInfo>): void {
    if (this.hole !== NO_SLOT) {
      this.slots[this.hole] = pfn;
      this.hole = NO_SLOT;
      return;
    }
    this.slots.splice(this.hand, 0, pfn);
    if (this.slots.length > 1) this.hand++;
  }

  /** A page left by other means: its slot closes. */
  onRemove(pfn: number): void {
    this.closeSlot(this.slots.indexOf(pfn));
  }

  /** The victim left: its slot is the hole, the hand moves past it. */
  onEvicted(pfn: number): void {
    if (this.hole !== NO_SLOT) this.closeSlot(this.hole);
    const i = this.slots.indexOf(pfn);
    this.slots[i] = NO_SLOT;
    this.hole = i;
    this.hand = (i + 1) % this.slots.length;
  }

  onReference(_pfn: number, _write: boolean): void {}

  onTick(_view: VictimView): void {}

  /**
   * TODO: the enhanced second-chance sweeps. As given: the first eligible frame from the hand,
   * whatever its bits (that is FIFO). Use view.isReferenced, view.isDirty and
   * view.testAndClearReferenced; return -1 only when no frame is eligible.
   */
  selectVictim(view: VictimView): number {
    const n = this.slots.length;
    for (let k = 0; k < n; k++) {
      const i = (this.hand + k) % n;
      const p = this.slots[i]!;
      if (p !== NO_SLOT && view.eligible(p)) {
        this.hand = i;
        return p;
      }
    }
    return -1;
  }

  /** The resident frames from the hand round the circle. */
  order(): number[] {
    const n = this.slots.length;
    const out: number[] = [];
    for (let k = 0; k < n; k++) {
      const p = this.slots[(this.hand + k) % n]!;
      if (p !== NO_SLOT) out.push(p);
    }
    return out;
  }

  /** TODO (optional): throw when your structures disagree with each other. */
  checkInvariants(): void {}

  private closeSlot(i: number): void {
    this.slots.splice(i, 1);
    if (this.hole !== NO_SLOT && this.hole > i) this.hole--;
    else if (this.hole === i) this.hole = NO_SLOT;
    if (this.hand > i) this.hand--;
    if (this.hand >= this.slots.length) this.hand = 0;
  }
}
