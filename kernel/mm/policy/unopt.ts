/**
 * UNOPT, the pessimal policy (OSTEP's paging-policy.py): evict the page whose next use comes
 * soonest, so that it must be loaded again at once. A page never used again is kept while any
 * page used again is eligible; when every eligible page is never used again, the one loaded
 * earliest goes (paging-policy.py's scan keeps the first of equals). A foil for OPT: each
 * choice is the worst one at that step (over a whole string it is not always the most faults
 * any policy can make, but never fewer than OPT's). Needs the future, like OPT: without it
 * selectVictim throws.
 *
 * Two resident pages cannot share a finite next use (each position of a trace references one
 * page); a finite tie would mean a broken future: a panic. O(resident) per victim.
 */
import { panic } from '../../lib/panic.ts';
import { FifoPolicy } from './fifo.ts';
import { futureUse } from './opt.ts';
import type { VictimView } from './types.ts';

export class UnoptPolicy extends FifoPolicy {
  override readonly name = 'unopt';
  readonly future = 'required';

  /** The eligible page used again soonest; the earliest loaded when none is used again. */
  override selectVictim(view: VictimView): number {
    const l = this.list;
    let best = -1;
    let bestNext = Number.POSITIVE_INFINITY;
    for (let p = l.head; p !== -1; p = l.next[p]!) {
      if (!view.eligible(p)) continue;
      const next = futureUse(view, p, 'unopt');
      if (best === -1 || next < bestNext) {
        best = p;
        bestNext = next;
      } else if (next === bestNext && next !== Number.POSITIVE_INFINITY) {
        panic(`unopt: frames ${best} and ${p} are both next used at position ${next}`);
      }
    }
    return best;
  }
}
