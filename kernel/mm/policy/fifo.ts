/**
 * FIFO: evict the page loaded longest ago; reference and dirty bits are ignored. A list in
 * load order, oldest at the head. O(1) per load and per victim (the first eligible frame from
 * the head; with a scope, ineligible frames ahead of it are passed over).
 * Also the base of the policies that keep one list in load order (lru, nru, aging, opt, random).
 */
import { FrameList } from './framelist.ts';
import type { LoadInfo, PolicyOptions, ReplacementPolicy, VictimView } from './types.ts';

export class FifoPolicy implements ReplacementPolicy {
  readonly name: string = 'fifo';
  readonly wantsEveryReference: boolean = false;
  readonly tickCycles: number = 0;
  protected readonly list: FrameList;

  constructor(options: PolicyOptions) {
    this.list = new FrameList(options.frameCount);
  }

  onLoad(pfn: number, _info: Readonly<LoadInfo>): void {
    this.list.pushBack(pfn);
  }

  onRemove(pfn: number): void {
    this.list.remove(pfn);
  }

  onEvicted(pfn: number): void {
    this.list.remove(pfn);
  }

  onReference(_pfn: number, _write: boolean): void {}

  onTick(_view: VictimView): void {}

  /** The oldest eligible frame. */
  selectVictim(view: VictimView): number {
    const l = this.list;
    for (let p = l.head; p !== -1; p = l.next[p]!) if (view.eligible(p)) return p;
    return -1;
  }

  order(): number[] {
    return this.list.toArray();
  }

  checkInvariants(): void {
    this.list.check(this.name);
  }
}
