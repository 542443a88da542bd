/**
 * WSClock (Carr and Hennessy; Tanenbaum's presentation). Frames in a circle with the time of
 * last use. The hand scans: a referenced page gets its bit cleared and its last use set to now;
 * an unreferenced page older than the working-set window tau is evicted if clean; an old dirty
 * page would be scheduled for writing, so it is passed over in favour of clean ones. After a full
 * turn with no clean old page, the first old dirty page goes, else the least recently used one.
 */
import { panic } from '../../lib/panic.ts';
import { FrameList } from './framelist.ts';
import type { LoadInfo, PolicyOptions, ReplacementPolicy, VictimView } from './types.ts';

export class WsClockPolicy implements ReplacementPolicy {
  readonly name = 'wsclock';
  readonly wantsEveryReference = false;
  readonly tickCycles = 0;
  readonly windowCycles: number;
  private readonly circle: FrameList;
  private readonly lastUse: Float64Array;
  private hand = -1;
  private now = 0;

  constructor(options: PolicyOptions) {
    this.circle = new FrameList(options.frameCount);
    this.lastUse = new Float64Array(options.frameCount);
    this.windowCycles = options.wsWindowCycles ?? 10_000_000;
  }

  onLoad(pfn: number, _info: Readonly<LoadInfo>): void {
    if (this.hand === -1) {
      this.circle.pushBack(pfn);
      this.hand = pfn;
    } else {
      this.circle.insertBefore(this.hand, pfn);
    }
    this.lastUse[pfn] = this.now;
  }

  onRemove(pfn: number): void {
    if (this.hand === pfn) this.hand = this.circle.size > 1 ? this.after(pfn) : -1;
    this.circle.remove(pfn);
  }

  onEvicted(pfn: number): void {
    this.onRemove(pfn);
  }

  onReference(): void {}

  onTick(): void {}

  selectVictim(view: VictimView): number {
    if (this.hand === -1) return -1;
    const now = view.now();
    this.now = now;
    let oldDirty = -1;
    let lru = -1;
    const n = this.circle.size;
    for (let steps = 0; steps < n; steps++) {
      const p = this.hand;
      this.hand = this.after(p);
      if (!view.eligible(p)) continue;
      if (view.testAndClearReferenced(p)) {
        this.lastUse[p] = now;
        continue;
      }
      if (lru === -1 || this.lastUse[p]! < this.lastUse[lru]!) lru = p;
      if (now - this.lastUse[p]! > this.windowCycles) {
        if (!view.isDirty(p)) return p;
        if (oldDirty === -1) oldDirty = p;
      }
    }
    if (oldDirty !== -1) return oldDirty;
    if (lru !== -1) return lru;
    // Every eligible page was referenced this turn: take the first eligible one after the hand.
    for (let steps = 0; steps < n; steps++) {
      const p = this.hand;
      this.hand = this.after(p);
      if (view.eligible(p)) return p;
    }
    return -1;
  }

  order(): number[] {
    return this.circle.ringFrom(this.hand);
  }

  checkInvariants(): void {
    this.circle.check(this.name);
    if ((this.hand === -1) !== (this.circle.size === 0))
      panic(`wsclock: hand ${this.hand} with ${this.circle.size} frames`);
  }

  private after(pfn: number): number {
    return this.circle.after(pfn);
  }
}
