/**
 * A doubly linked list of frames in typed arrays (no object per frame), shared by the policies.
 *
 *   member[pfn] == 1  <=>  pfn is in the list;  size == |{ pfn : member[pfn] == 1 }|
 *   head is the oldest (first) frame, tail the newest
 */
import { panic } from '../../lib/panic.ts';

export class FrameList {
  head = -1;
  tail = -1;
  size = 0;
  readonly next: Int32Array;
  readonly prev: Int32Array;
  readonly member: Uint8Array;

  constructor(frameCount: number) {
    this.next = new Int32Array(frameCount).fill(-1);
    this.prev = new Int32Array(frameCount).fill(-1);
    this.member = new Uint8Array(frameCount);
  }

  has(pfn: number): boolean {
    return this.member[pfn] === 1;
  }

  pushBack(pfn: number): void {
    this.insertAfter(this.tail, pfn);
  }

  pushFront(pfn: number): void {
    this.insertBefore(this.head, pfn);
  }

  /** Insert `pfn` after `at` (-1: at the front). */
  insertAfter(at: number, pfn: number): void {
    if (this.member[pfn] === 1) panic(`frameList: frame ${pfn} is already listed`);
    const nxt = at === -1 ? this.head : this.next[at]!;
    this.prev[pfn] = at;
    this.next[pfn] = nxt;
    if (at === -1) this.head = pfn;
    else this.next[at] = pfn;
    if (nxt === -1) this.tail = pfn;
    else this.prev[nxt] = pfn;
    this.member[pfn] = 1;
    this.size++;
  }

  /** Insert `pfn` before `at` (-1: at the back). */
  insertBefore(at: number, pfn: number): void {
    this.insertAfter(at === -1 ? this.tail : this.prev[at]!, pfn);
  }

  remove(pfn: number): void {
    if (this.member[pfn] !== 1) panic(`frameList: frame ${pfn} is not listed`);
    const p = this.prev[pfn]!;
    const n = this.next[pfn]!;
    if (p === -1) this.head = n;
    else this.next[p] = n;
    if (n === -1) this.tail = p;
    else this.prev[n] = p;
    this.next[pfn] = -1;
    this.prev[pfn] = -1;
    this.member[pfn] = 0;
    this.size--;
  }

  moveToBack(pfn: number): void {
    this.remove(pfn);
    this.pushBack(pfn);
  }

  moveToFront(pfn: number): void {
    this.remove(pfn);
    this.pushFront(pfn);
  }

  /** The frame after `pfn` when the list is read as a circle (clock hands). */
  after(pfn: number): number {
    const n = this.next[pfn]!;
    return n === -1 ? this.head : n;
  }

  /** The frames round the circle starting at `from` (none when `from` is -1). */
  ringFrom(from: number): number[] {
    const out: number[] = [];
    if (from === -1) return out;
    let p = from;
    do {
      out.push(p);
      p = this.after(p);
    } while (p !== from);
    return out;
  }

  /** The frames from head to tail. */
  toArray(): number[] {
    const out: number[] = [];
    for (let p = this.head; p !== -1; p = this.next[p]!) out.push(p);
    return out;
  }

  /** Check links and counts; `who` names the owner in the panic. */
  check(who: string): void {
    let n = 0;
    let prev = -1;
    for (let p = this.head; p !== -1; p = this.next[p]!) {
      if (this.member[p] !== 1) panic(`${who}: frame ${p} linked but not a member`);
      if (this.prev[p] !== prev) panic(`${who}: frame ${p} has a broken back link`);
      prev = p;
      if (++n > this.size) panic(`${who}: list longer than its size ${this.size} (a cycle?)`);
    }
    if (prev !== this.tail) panic(`${who}: tail ${this.tail} is not the last frame ${prev}`);
    if (n !== this.size) panic(`${who}: ${n} frames linked, size says ${this.size}`);
  }
}
