/**
 * Clock (second chance). Frames sit in a circle in load order with a hand. On a hit the
 * hardware sets the page's reference (accessed) bit. To find a victim: while the frame under
 * the hand has its reference bit set, clear it and advance; evict that frame. The new page is
 * loaded into the evicted frame's place in the circle with its reference bit set (the access
 * that loads it sets it), and the hand advances past it. While frames are free, a new page is
 * placed just behind the hand (it is the last one the hand reaches).
 */
import { panic } from '../../lib/panic.ts';
import { FrameList } from './framelist.ts';
import type { LoadInfo, PolicyOptions, ReplacementPolicy, VictimView } from './types.ts';

export class ClockPolicy implements ReplacementPolicy {
  readonly name = 'clock';
  readonly wantsEveryReference = false;
  readonly tickCycles = 0;
  private readonly circle: FrameList;
  /** The frame under the hand, or -1 when the circle is empty. */
  private hand = -1;
  /** Where the last victim was (the frame before it in the circle), or -2 for no hole. */
  private holeAfter = -2;

  constructor(options: PolicyOptions) {
    this.circle = new FrameList(options.frameCount);
  }

  onLoad(pfn: number, _info: Readonly<LoadInfo>): void {
    const c = this.circle;
    if (this.holeAfter !== -2) {
      c.insertAfter(this.holeAfter, pfn);
      this.holeAfter = -2;
      this.hand = this.after(pfn);
      return;
    }
    if (this.hand === -1) {
      c.pushBack(pfn);
      this.hand = pfn;
    } else {
      c.insertBefore(this.hand, pfn);
    }
  }

  onRemove(pfn: number): void {
    if (this.hand === pfn) this.hand = this.circle.size > 1 ? this.after(pfn) : -1;
    if (this.holeAfter === pfn) this.holeAfter = this.circle.prev[pfn]!;
    this.circle.remove(pfn);
  }

  onEvicted(pfn: number): void {
    const c = this.circle;
    this.holeAfter = c.prev[pfn]!;
    this.hand = c.size > 1 ? this.after(pfn) : -1;
    c.remove(pfn);
  }

  onReference(): void {}

  onTick(): void {}

  selectVictim(view: VictimView): number {
    const c = this.circle;
    if (this.hand === -1) return -1;
    // Two full turns find an unreferenced frame if any eligible one exists.
    for (let steps = 0; steps <= 2 * c.size; steps++) {
      const p = this.hand;
      if (view.eligible(p)) {
        if (!view.testAndClearReferenced(p)) return p;
      }
      this.hand = this.after(p);
    }
    return -1;
  }

  /** From the hand round the circle. */
  order(): number[] {
    return this.circle.ringFrom(this.hand);
  }

  checkInvariants(): void {
    this.circle.check(this.name);
    if ((this.hand === -1) !== (this.circle.size === 0))
      panic(`clock: hand ${this.hand} with ${this.circle.size} frames`);
    if (this.hand !== -1 && !this.circle.has(this.hand)) panic(`clock: hand on unlisted frame ${this.hand}`);
  }

  /** The next frame round the circle. */
  private after(pfn: number): number {
    return this.circle.after(pfn);
  }
}
