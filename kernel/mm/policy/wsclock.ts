/**
 * WSClock (Carr and Hennessy, 1981; Tanenbaum's presentation). Frames sit in a circle with the
 * time of each page's last use. The hand sweeps one turn at most:
 *
 *   referenced                      -> clear the bit, lastUse = now (it is in the working set)
 *   unreferenced, age <= tau        -> keep (still in the working set)
 *   unreferenced, age > tau, clean  -> the victim
 *   unreferenced, age > tau, dirty  -> pass over (a real kernel would schedule its write here
 *                                      and take it on a later turn once clean)
 *
 * age = now - lastUse; tau = wsWindowCycles. After a full turn with no clean old page, the
 * victim is the oldest old dirty page; when no page is old, the oldest clean page (claim any
 * clean page); when none is clean, the oldest page. "Oldest" is the smallest lastUse, ties going
 * to the first the hand met. The hand is left just past the victim, so the next page loaded
 * takes its place in the circle. A page is loaded with lastUse = the time of the last sweep
 * (onLoad has no clock); the access that loads it sets its reference bit, so the next sweep
 * stamps the true time before any age is measured.
 *
 *   hand == -1  <=>  circle.size == 0;  hand is in the circle otherwise
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
  /** Emulated time (cycles) at which the sweep last found the page referenced. */
  private readonly lastUse: Float64Array;
  private hand = -1;
  /** Time of the last sweep. */
  private sweptAt = 0;

  constructor(options: PolicyOptions) {
    this.circle = new FrameList(options.frameCount);
    this.lastUse = new Float64Array(options.frameCount);
    this.windowCycles = options.wsWindowCycles ?? 10_000_000;
    if (!(this.windowCycles >= 0)) throw new RangeError(`wsclock: window of ${this.windowCycles} cycles`);
  }

  /** Just behind the hand (the victim's place after an eviction). O(1). */
  onLoad(pfn: number, _info: Readonly<LoadInfo>): void {
    if (this.hand === -1) {
      this.circle.pushBack(pfn);
      this.hand = pfn;
    } else {
      this.circle.insertBefore(this.hand, pfn);
    }
    this.lastUse[pfn] = this.sweptAt;
  }

  onRemove(pfn: number): void {
    if (this.hand === pfn) this.hand = this.circle.size > 1 ? this.circle.after(pfn) : -1;
    this.circle.remove(pfn);
  }

  onEvicted(pfn: number): void {
    this.onRemove(pfn);
  }

  onReference(_pfn: number, _write: boolean): void {}

  onTick(_view: VictimView): void {}

  /** One turn of the hand; then the fallbacks above. O(resident) worst case. -1: none eligible. */
  selectVictim(view: VictimView): number {
    const c = this.circle;
    if (this.hand === -1) return -1;
    const now = view.now();
    this.sweptAt = now;
    let oldDirty = -1;
    for (let steps = c.size; steps > 0; steps--) {
      const p = this.hand;
      this.hand = c.after(p);
      if (!view.eligible(p)) continue;
      if (view.testAndClearReferenced(p)) {
        this.lastUse[p] = now;
      } else if (now - this.lastUse[p]! > this.windowCycles) {
        if (!view.isDirty(p)) return p;
        oldDirty = this.older(oldDirty, p);
      }
    }
    const victim = oldDirty !== -1 ? oldDirty : this.oldestPreferClean(view);
    if (victim !== -1) this.hand = c.after(victim);
    return victim;
  }

  /** Every eligible page is in the working set: the oldest clean one, else the oldest. */
  private oldestPreferClean(view: VictimView): number {
    const c = this.circle;
    let clean = -1;
    let any = -1;
    let p = this.hand;
    for (let steps = c.size; steps > 0; steps--, p = c.after(p)) {
      if (!view.eligible(p)) continue;
      if (!view.isDirty(p)) clean = this.older(clean, p);
      any = this.older(any, p);
    }
    return clean !== -1 ? clean : any;
  }

  /** From the hand round the circle. */
  order(): number[] {
    return this.circle.ringFrom(this.hand);
  }

  checkInvariants(): void {
    const c = this.circle;
    c.check(this.name);
    if ((this.hand === -1) !== (c.size === 0)) panic(`wsclock: hand ${this.hand} with ${c.size} frames`);
    if (this.hand !== -1 && !c.has(this.hand)) panic(`wsclock: hand on unlisted frame ${this.hand}`);
  }

  /** `p` if it was used before `best` (or `best` is -1), else `best`. */
  private older(best: number, p: number): number {
    return best === -1 || this.lastUse[p]! < this.lastUse[best]! ? p : best;
  }
}
