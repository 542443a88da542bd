/**
 * The clock: emulated time and the event queue, ordered by (time, sequence).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Clock } from '../kernel/hw/clock.ts';

function clock(): Clock {
  return new Clock({ hz: 1e9 });
}

describe('event order', () => {
  it('fires by time, and events due at the same time in the order they were scheduled', () => {
    const c = clock();
    const seen: string[] = [];
    const at = (t: number, name: string) => c.schedule(t, name, () => seen.push(name));
    at(30, 'c1');
    at(10, 'a1');
    at(20, 'b1');
    at(10, 'a2');
    at(30, 'c2');
    at(10, 'a3');
    c.runUntil(100);
    expect(seen).toEqual(['a1', 'a2', 'a3', 'b1', 'c1', 'c2']);
  });

  it('matches a stable sort by time for any schedule (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 200 }), (times) => {
        const c = clock();
        const fired: number[] = [];
        for (const [i, t] of times.entries()) c.schedule(t, `e${i}`, () => fired.push(i));
        c.runUntil(21);
        const expected = times.map((t, i) => ({ t, i })).sort((x, y) => x.t - y.t || x.i - y.i);
        expect(fired).toEqual(expected.map((e) => e.i));
        expect(c.pending()).toBe(0);
      }),
      { seed: 1, numRuns: 200 },
    );
  });

  it('returns increasing sequence numbers and passes the firing time to the callback', () => {
    const c = clock();
    const s1 = c.schedule(5, 'x', () => {});
    const s2 = c.after(5, 'y', () => {});
    expect(s2).toBeGreaterThan(s1);
    const when: number[] = [];
    c.after(7, 'z', (now) => when.push(now));
    c.runUntil(50);
    expect(when).toEqual([7]);
  });
});

describe('runUntil', () => {
  it('fires events up to and including the time, leaves later ones, and ends at the time', () => {
    const c = clock();
    const seen: number[] = [];
    for (const t of [5, 10, 15]) c.schedule(t, `t${t}`, (now) => seen.push(now));
    c.runUntil(10);
    expect(seen).toEqual([5, 10]);
    expect(c.now).toBe(10);
    expect(c.pending()).toBe(1);
    expect(c.nextEventTime()).toBe(15);
    expect(c.nextEventLabel()).toBe('t15');
    c.runUntil(12);
    expect(c.now).toBe(12);
    expect(seen).toEqual([5, 10]);
  });

  it('fires events that callbacks schedule inside the window, in order', () => {
    const c = clock();
    const seen: string[] = [];
    c.schedule(10, 'first', () => {
      seen.push('first');
      c.after(0, 'same time', () => seen.push('same time'));
      c.after(5, 'later', () => seen.push('later'));
      c.after(50, 'outside', () => seen.push('outside'));
    });
    c.schedule(12, 'second', () => seen.push('second'));
    c.runUntil(20);
    expect(seen).toEqual(['first', 'same time', 'second', 'later']);
    expect(c.pending()).toBe(1);
  });

  it('never moves time backwards', () => {
    const c = clock();
    c.now = 100;
    c.runUntil(50);
    expect(c.now).toBe(100);
    // Overdue events (time spent without firing) fire at now, not at their old time.
    c.schedule(150, 'a', (now) => expect(now).toBe(400));
    c.now = 400;
    c.runUntil(300);
    expect(c.pending()).toBe(0);
    expect(c.now).toBe(400);
  });
});

describe('advanceToNextEvent', () => {
  it('jumps to the next event time and fires everything due then; false when idle', () => {
    const c = clock();
    const seen: string[] = [];
    c.schedule(40, 'b', () => seen.push('b'));
    c.schedule(25, 'a1', () => {
      seen.push('a1');
      c.after(0, 'a3', () => seen.push('a3'));
    });
    c.schedule(25, 'a2', () => seen.push('a2'));
    expect(c.advanceToNextEvent()).toBe(true);
    expect(c.now).toBe(25);
    expect(seen).toEqual(['a1', 'a2', 'a3']);
    expect(c.advanceToNextEvent()).toBe(true);
    expect(c.now).toBe(40);
    expect(seen).toEqual(['a1', 'a2', 'a3', 'b']);
    expect(c.advanceToNextEvent()).toBe(false);
    expect(c.now).toBe(40);
    expect(c.nextEventTime()).toBe(Number.POSITIVE_INFINITY);
    expect(c.nextEventLabel()).toBeUndefined();
  });

  it('does not move time back for an overdue event', () => {
    const c = clock();
    c.schedule(10, 'x', () => {});
    c.now = 70;
    c.advanceToNextEvent();
    expect(c.now).toBe(70);
  });
});

describe('scheduling in the past', () => {
  it('an event scheduled before now fires at now, after the events already due then', () => {
    const c = clock();
    c.runUntil(100);
    const seen: Array<[string, number]> = [];
    c.schedule(100, 'due', (now) => seen.push(['due', now]));
    c.schedule(3, 'past', (now) => seen.push(['past', now]));
    c.after(-50, 'negative delay', (now) => seen.push(['negative delay', now]));
    expect(c.nextEventTime()).toBe(100);
    expect(c.fireDue()).toBe(3);
    expect(seen).toEqual([
      ['due', 100],
      ['past', 100],
      ['negative delay', 100],
    ]);
  });

  it('regression: a NaN time is refused instead of jamming the queue', () => {
    const c = clock();
    expect(() => c.schedule(Number.NaN, 'bad', () => {})).toThrow(/clock\.schedule: event bad at time NaN/);
    expect(() => c.after(Number.NaN, 'bad', () => {})).toThrow(RangeError);
    let fired = false;
    c.schedule(5, 'ok', () => {
      fired = true;
    });
    c.runUntil(5);
    expect(fired).toBe(true);
  });
});

describe('observers and time units', () => {
  it('observer events fire in order but keep nothing pending', () => {
    const c = clock();
    const seen: string[] = [];
    c.schedule(10, 'sample', () => seen.push('sample'), { observer: true });
    c.schedule(10, 'work', () => seen.push('work'));
    expect(c.pending()).toBe(1);
    c.runUntil(10);
    expect(seen).toEqual(['sample', 'work']);
    expect(c.pending()).toBe(0);
    c.after(5, 'sample', () => {}, { observer: true });
    expect(c.pending()).toBe(0);
    expect(c.nextEventTime()).toBe(15);
  });

  it('converts seconds and cycles at its frequency, and refuses a frequency that is not positive', () => {
    const c = new Clock({ hz: 2e9 });
    expect(c.cyclesFor(1e-6)).toBe(2000);
    expect(c.cyclesFor(1.0000000001e-9)).toBe(3); // rounded up
    c.runUntil(3e9);
    expect(c.seconds()).toBe(1.5);
    for (const hz of [0, -1, Number.NaN]) expect(() => new Clock({ hz })).toThrow(RangeError);
  });

  it('matches a sorted-list model under interleaved scheduling and running (property)', () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('at' as const), t: fc.integer({ min: 0, max: 200 }) }),
      fc.record({ kind: fc.constant('after' as const), t: fc.integer({ min: -10, max: 50 }) }),
      fc.record({ kind: fc.constant('run' as const), t: fc.integer({ min: 0, max: 220 }) }),
      fc.record({ kind: fc.constant('next' as const), t: fc.constant(0) }),
      fc.record({ kind: fc.constant('spend' as const), t: fc.integer({ min: 0, max: 30 }) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 80 }), (steps) => {
        const c = clock();
        const fired: Array<[number, number]> = [];
        // The model: pending (time, seq) pairs, fired smallest first; time never goes back.
        let now = 0;
        let seq = 0;
        const model: Array<{ t: number; s: number }> = [];
        const modelFired: Array<[number, number]> = [];
        const fireModelUpTo = (limit: number) => {
          model.sort((a, b) => a.t - b.t || a.s - b.s);
          while (model.length > 0 && model[0]!.t <= limit) {
            const e = model.shift()!;
            now = Math.max(now, e.t);
            modelFired.push([e.s, now]);
          }
        };
        for (const { kind, t } of steps) {
          if (kind === 'at' || kind === 'after') {
            const s = seq++;
            const when = kind === 'at' ? t : c.now + t;
            c.schedule(when, `e${s}`, (n) => fired.push([s, n]));
            model.push({ t: Math.max(when, now), s });
          } else if (kind === 'run') {
            c.runUntil(t);
            fireModelUpTo(t);
            now = Math.max(now, t);
          } else if (kind === 'next') {
            const more = c.advanceToNextEvent();
            expect(more).toBe(model.length > 0);
            if (model.length > 0) {
              const first = Math.min(...model.map((e) => e.t));
              now = Math.max(now, first);
              fireModelUpTo(now);
            }
          } else {
            c.now += t;
            now += t;
          }
          expect(c.now).toBe(now);
        }
        expect(fired).toEqual(modelFired);
        expect(c.pending()).toBe(model.length);
      }),
      { seed: 8, numRuns: 200 },
    );
  });
});
