/** Random: evict an eligible page chosen by the seeded generator. O(resident) per victim. */
import { FifoPolicy } from './fifo.ts';
import type { PolicyOptions, VictimView } from './types.ts';

export class RandomPolicy extends FifoPolicy {
  override readonly name = 'random';
  private readonly candidates: Int32Array;

  constructor(options: PolicyOptions) {
    super(options);
    this.candidates = new Int32Array(options.frameCount);
  }

  override selectVictim(view: VictimView): number {
    const l = this.list;
    let n = 0;
    for (let p = l.head; p !== -1; p = l.next[p]!) if (view.eligible(p)) this.candidates[n++] = p;
    return n === 0 ? -1 : this.candidates[view.random(n)]!;
  }
}
