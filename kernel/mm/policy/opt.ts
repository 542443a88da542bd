/**
 * OPT (Belady's MIN): evict the page whose next use lies farthest in the future; a page never
 * used again goes first. Ties go to the page loaded earliest. Needs the future, which only a
 * trace replay knows: without it (view.nextUse returns undefined) selectVictim throws.
 * O(resident) per victim (stops at the first page never used again).
 */
import { FifoPolicy } from './fifo.ts';
import type { VictimView } from './types.ts';

export class OptPolicy extends FifoPolicy {
  override readonly name = 'opt';

  override selectVictim(view: VictimView): number {
    const l = this.list;
    let best = -1;
    let bestNext = -1;
    for (let p = l.head; p !== -1; p = l.next[p]!) {
      if (!view.eligible(p)) continue;
      const next = view.nextUse(p);
      if (next === undefined)
        throw new Error('opt: OPT needs the future of a trace replay (vmlab replay); it is unknown here');
      if (next > bestNext) {
        best = p;
        bestNext = next;
        if (next === Number.POSITIVE_INFINITY) break;
      }
    }
    return best;
  }
}
