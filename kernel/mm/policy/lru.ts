/**
 * Exact LRU, the textbook ideal: every reference moves the page to the most-recently-used end
 * (the emulator reports every reference: real hardware cannot). The list runs LRU (head) ->
 * MRU (tail); a new page enters at the MRU end. The victim is the least recently used eligible
 * page. O(1) per reference, per load and per victim.
 */
import { FifoPolicy } from './fifo.ts';

export class LruPolicy extends FifoPolicy {
  override readonly name: string = 'lru';
  override readonly wantsEveryReference = true;

  /** Move to the MRU end. */
  override onReference(pfn: number, _write: boolean): void {
    const l = this.list;
    if (l.tail !== pfn && l.has(pfn)) l.moveToBack(pfn);
  }
}
