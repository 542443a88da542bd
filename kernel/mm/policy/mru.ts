/**
 * MRU: evict the most recently used page (OSTEP's paging-policy.py). Poor where recent pages
 * are used again soon (most programs), good on a loop one page longer than memory, where LRU
 * faults on every reference. Every reference moves the page to the most-recently-used end of
 * the list (as in exact LRU); the victim is the eligible page nearest that end. When a page
 * faults it is not yet resident, so the victim is the page referenced last before the fault.
 * O(1) per reference and per load; per victim O(1), plus the ineligible frames passed over.
 */
import { LruPolicy } from './lru.ts';
import type { VictimView } from './types.ts';

export class MruPolicy extends LruPolicy {
  override readonly name: string = 'mru';

  /** The eligible frame nearest the MRU end (the list's tail). */
  override selectVictim(view: VictimView): number {
    const l = this.list;
    for (let p = l.tail; p !== -1; p = l.prev[p]!) if (view.eligible(p)) return p;
    return -1;
  }
}
