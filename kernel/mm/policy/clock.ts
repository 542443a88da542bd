/**
 * Clock (second chance), as OSTEP and Tanenbaum draw it.
 *
 * Frames sit in a circle in load order with a hand. On a hit the hardware sets the page's
 * reference (accessed) bit. To find a victim: while the frame under the hand has its reference
 * bit set, clear it and advance; the first frame found clear is the victim, and the hand stays
 * on it. When it is evicted, the hand moves to the next frame and the victim's place in the
 * circle becomes a hole; the next page loaded fills the hole (whatever frame number the kernel
 * gave it) with its reference bit set (the access that loads it sets it), so the hand has
 * already passed it. While frames are free (no hole), a new page is placed just behind the
 * hand: it is the last one the hand reaches.
 *
 * The circle is a FrameList read round (FrameList.after); the hole is remembered as the frame
 * before it, so placing the new page is O(1) even when its frame number differs from the
 * victim's. Since the hand stands just after the hole, "fill the hole" and "behind the hand"
 * are the same place unless the hand moved in between (a victim chosen but not evicted).
 *
 *   hand == -1  <=>  circle.size == 0;   hand is in the circle otherwise
 *   holeAfter == NO_HOLE, or -1 (the hole is at the front), or a frame in the circle
 */
import { panic } from '../../lib/panic.ts';
import { FrameList } from './framelist.ts';
import type { LoadInfo, PolicyOptions, ReplacementPolicy, VictimView } from './types.ts';

/** holeAfter when no victim's place waits for a new page. */
const NO_HOLE = -2;

export class ClockPolicy implements ReplacementPolicy {
  readonly name = 'clock';
  readonly wantsEveryReference = false;
  readonly tickCycles = 0;
  private readonly circle: FrameList;
  /** The frame under the hand, or -1 when the circle is empty. */
  private hand = -1;
  /** The frame before the last victim's place (-1: the front of the list), or NO_HOLE. */
  private holeAfter = NO_HOLE;

  constructor(options: PolicyOptions) {
    this.circle = new FrameList(options.frameCount);
  }

  /** Into the last victim's place, hand just past it; else just behind the hand. O(1). */
  onLoad(pfn: number, _info: Readonly<LoadInfo>): void {
    const c = this.circle;
    if (this.holeAfter !== NO_HOLE) {
      c.insertAfter(this.holeAfter, pfn);
      this.holeAfter = NO_HOLE;
      this.hand = c.after(pfn);
    } else if (this.hand === -1) {
      c.pushBack(pfn);
      this.hand = pfn;
    } else {
      c.insertBefore(this.hand, pfn);
    }
  }

  /** A page left by other means: its place closes (no hole), the hand moves on if on it. */
  onRemove(pfn: number): void {
    const c = this.circle;
    if (this.hand === pfn) this.hand = c.size > 1 ? c.after(pfn) : -1;
    if (this.holeAfter === pfn) this.holeAfter = c.prev[pfn]!;
    c.remove(pfn);
  }

  /** The victim went: its place is the hole the next load fills; the hand moves past it. */
  onEvicted(pfn: number): void {
    const c = this.circle;
    this.holeAfter = c.prev[pfn]!;
    this.hand = c.size > 1 ? c.after(pfn) : -1;
    c.remove(pfn);
  }

  onReference(_pfn: number, _write: boolean): void {}

  onTick(_view: VictimView): void {}

  /**
   * Sweep from the hand, clearing set reference bits, to the first eligible frame found clear.
   * Ineligible frames are passed over with their bits untouched. Two turns suffice: the first
   * clears every eligible bit. -1 when no frame is eligible.
   */
  selectVictim(view: VictimView): number {
    const c = this.circle;
    if (this.hand === -1) return -1;
    for (let steps = 2 * c.size; steps >= 0; steps--) {
      const p = this.hand;
      if (view.eligible(p) && !view.testAndClearReferenced(p)) return p;
      this.hand = c.after(p);
    }
    return -1;
  }

  /** From the hand round the circle. */
  order(): number[] {
    return this.circle.ringFrom(this.hand);
  }

  checkInvariants(): void {
    const c = this.circle;
    c.check(this.name);
    if ((this.hand === -1) !== (c.size === 0)) panic(`clock: hand ${this.hand} with ${c.size} frames`);
    if (this.hand !== -1 && !c.has(this.hand)) panic(`clock: hand on unlisted frame ${this.hand}`);
    if (this.holeAfter >= 0 && !c.has(this.holeAfter))
      panic(`clock: hole after unlisted frame ${this.holeAfter}`);
  }
}
