/**
 * NRU (not recently used): pages fall in four classes by (referenced, dirty): 0 = neither,
 * 1 = dirty only, 2 = referenced only, 3 = both. The victim comes from the lowest non-empty
 * class (the oldest loaded in it). Every tick clears the reference bits, so "referenced" means
 * "since the last tick". O(resident) per victim and per tick.
 */
import { FifoPolicy } from './fifo.ts';
import type { PolicyOptions, VictimView } from './types.ts';

export class NruPolicy extends FifoPolicy {
  override readonly name = 'nru';
  override readonly tickCycles: number;

  constructor(options: PolicyOptions) {
    super(options);
    this.tickCycles = options.tickCycles ?? 1_000_000;
  }

  override onTick(view: VictimView): void {
    const l = this.list;
    for (let p = l.head; p !== -1; p = l.next[p]!) view.testAndClearReferenced(p);
  }

  override selectVictim(view: VictimView): number {
    const l = this.list;
    let best = -1;
    let bestClass = 4;
    for (let p = l.head; p !== -1 && bestClass > 0; p = l.next[p]!) {
      if (!view.eligible(p)) continue;
      const cls = (view.isReferenced(p) ? 2 : 0) + (view.isDirty(p) ? 1 : 0);
      if (cls < bestClass) {
        best = p;
        bestClass = cls;
      }
    }
    return best;
  }
}
