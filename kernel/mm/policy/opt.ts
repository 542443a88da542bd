/**
 * OPT (Belady's MIN): evict the page whose next use lies farthest in the future (never used
 * again first). Needs the future, which only a trace replay knows. Ties go to the page loaded
 * earliest. O(resident) per victim.
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
        throw new Error('opt: the OPT policy needs the future of a trace replay (vmlab replay)');
      if (next > bestNext) {
        best = p;
        bestNext = next;
      }
    }
    return best;
  }
}
