/**
 * Emulated time and the event queue.
 *
 * Time is a count of CPU cycles (`now`), advanced by whoever spends them (the MMU for each
 * access, the kernel for traps and switches) and by `runUntil`/`advanceTo` when the CPU idles.
 * Events fire in (time, sequence) order: two events due at the same cycle fire in the order
 * they were scheduled, so a run is deterministic.
 *
 * The queue is a binary min-heap over parallel arrays:
 *   heap order: key(i) <= key(child(i)), key = (time, seq)
 */
export type EventCallback = (now: number) => void;

export interface EventOptions {
  /** Reads the machine only (samplers, progress bars). */
  observer?: boolean;
  /** Kernel work that no process waits for: it runs in time but keeps nothing alive. */
  background?: boolean;
}

export class Clock {
  /** Emulated time in cycles since boot. */
  now = 0;
  readonly hz: number;
  private times: number[] = [];
  private seqs: number[] = [];
  private callbacks: EventCallback[] = [];
  private labels: string[] = [];
  /** Observer (and background) events keep nothing alive (see after()). */
  private observers: boolean[] = [];
  /** Pending events that are not observers. */
  private workEvents = 0;
  private nextSeq = 0;

  constructor(options: { hz: number }) {
    if (!(options.hz > 0)) throw new RangeError(`clock.hz: ${options.hz} is not a positive frequency`);
    this.hz = options.hz;
  }

  /** Cycles in `seconds` of emulated time at this clock's frequency (rounded up). */
  cyclesFor(seconds: number): number {
    return Math.ceil(seconds * this.hz);
  }

  /** Emulated seconds since boot. */
  seconds(): number {
    return this.now / this.hz;
  }

  /** Schedule `callback` at absolute cycle `time` (not before now). Returns the event's sequence number. */
  schedule(time: number, label: string, callback: EventCallback, options: EventOptions = {}): number {
    // A NaN time would sit in the heap comparing false to everything and block every event.
    if (Number.isNaN(time)) throw new RangeError(`clock.schedule: event ${label} at time NaN`);
    const t = Math.max(time, this.now);
    const seq = this.nextSeq++;
    const observer = options.observer === true || options.background === true;
    this.times.push(t);
    this.seqs.push(seq);
    this.callbacks.push(callback);
    this.labels.push(label);
    this.observers.push(observer);
    if (!observer) this.workEvents++;
    this.siftUp(this.times.length - 1);
    return seq;
  }

  /**
   * Schedule `callback` `delay` cycles from now. An `observer` event (a sampler, a progress
   * bar) only reads the machine, and a `background` one is kernel work no process waits for (the
   * flusher's timer): neither counts in pending(), so neither keeps the machine running.
   */
  after(delay: number, label: string, callback: EventCallback, options: EventOptions = {}): number {
    return this.schedule(this.now + delay, label, callback, options);
  }

  /** Number of pending events that are not observers (the ones that keep a machine running). */
  pending(): number {
    return this.workEvents;
  }

  /** Time of the earliest pending event, or Infinity. */
  nextEventTime(): number {
    return this.times.length > 0 ? this.times[0]! : Number.POSITIVE_INFINITY;
  }

  /** Label of the earliest pending event (for step-by-step displays), or undefined. */
  nextEventLabel(): string | undefined {
    return this.labels[0];
  }

  /** Fire every event due at or before `now`, in order. Returns how many fired. */
  fireDue(): number {
    let fired = 0;
    while (this.times.length > 0 && this.times[0]! <= this.now) {
      const cb = this.pop();
      cb(this.now);
      fired++;
    }
    return fired;
  }

  /** Jump to the next event's time (never backwards) and fire everything due then. */
  advanceToNextEvent(): boolean {
    if (this.times.length === 0) return false;
    this.now = Math.max(this.now, this.times[0]!);
    this.fireDue();
    return true;
  }

  /** Advance time to `time`, firing events on the way in order. */
  runUntil(time: number): void {
    while (this.times.length > 0 && this.times[0]! <= time) {
      this.now = Math.max(this.now, this.times[0]!);
      this.pop()(this.now);
    }
    this.now = Math.max(this.now, time);
  }

  private pop(): EventCallback {
    const cb = this.callbacks[0]!;
    if (!this.observers[0]) this.workEvents--;
    const last = this.times.length - 1;
    this.swap(0, last);
    this.times.pop();
    this.seqs.pop();
    this.callbacks.pop();
    this.labels.pop();
    this.observers.pop();
    this.siftDown(0);
    return cb;
  }

  private less(a: number, b: number): boolean {
    const ta = this.times[a]!;
    const tb = this.times[b]!;
    return ta < tb || (ta === tb && this.seqs[a]! < this.seqs[b]!);
  }

  private swap(a: number, b: number): void {
    [this.times[a], this.times[b]] = [this.times[b]!, this.times[a]!];
    [this.seqs[a], this.seqs[b]] = [this.seqs[b]!, this.seqs[a]!];
    [this.callbacks[a], this.callbacks[b]] = [this.callbacks[b]!, this.callbacks[a]!];
    [this.labels[a], this.labels[b]] = [this.labels[b]!, this.labels[a]!];
    [this.observers[a], this.observers[b]] = [this.observers[b]!, this.observers[a]!];
  }

  private siftUp(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private siftDown(i: number): void {
    const n = this.times.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.less(l, m)) m = l;
      if (r < n && this.less(r, m)) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }
}
