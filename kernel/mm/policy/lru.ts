/**
 * Exact LRU, the textbook ideal: every reference moves the page to the most-recently-used end
 * (the emulator reports every reference: real hardware cannot). The victim is the least
 * recently used eligible page. O(1) per reference.
 */
import { FifoPolicy } from './fifo.ts';
import type { LoadInfo } from './types.ts';

export class LruPolicy extends FifoPolicy {
  override readonly name = 'lru';
  override readonly wantsEveryReference = true;

  override onLoad(pfn: number, _info: Readonly<LoadInfo>): void {
    this.list.pushBack(pfn);
  }

  /** Move to the MRU end (the list runs LRU -> MRU). */
  override onReference(pfn: number): void {
    if (this.list.has(pfn) && this.list.tail !== pfn) this.list.moveToBack(pfn);
  }
}
