import { describe, expect, it } from 'vitest';
import { replacementExercise, translationExercise } from '../kernel/boot/exercises.ts';

describe('generated exercises (OSTEP style)', () => {
  it('a seed gives one translation problem; -c adds answers that agree with the memory dump', () => {
    const q = translationExercise({ seed: 5, count: 6, compute: false });
    expect(q).toBe(translationExercise({ seed: 5, count: 6, compute: false }));
    expect(q).not.toBe(translationExercise({ seed: 6, count: 6, compute: false }));
    expect(q.match(/^Virtual Address 0x[0-9a-f]{4}: Translates To What Physical Address/gm)).toHaveLength(6);
    const a = translationExercise({ seed: 5, count: 6, compute: true });
    const dump = new Map<number, number[]>();
    for (const m of a.matchAll(/^page +(\d+): ((?:[0-9a-f]{2} ?)+)$/gm))
      dump.set(
        Number(m[1]),
        m[2]!
          .trim()
          .split(' ')
          .map((h) => Number.parseInt(h, 16)),
      );
    expect(dump.size).toBe(128);
    const answers = [...a.matchAll(/--> (?:PA 0x([0-9a-f]+) .*byte there 0x([0-9a-f]{2})|FAULT)/g)];
    expect(answers).toHaveLength(6);
    for (const m of answers) {
      if (m[1] === undefined) continue;
      const pa = Number.parseInt(m[1], 16);
      expect(dump.get(Math.floor(pa / 32))![pa % 32]).toBe(Number.parseInt(m[2]!, 16));
    }
  });

  it('a replacement problem lists its references; -c works it through the policy', () => {
    const q = replacementExercise({
      seed: 1,
      count: 12,
      maxPage: 4,
      frames: 3,
      policy: 'lru',
      compute: false,
    });
    expect(q.match(/^Access: \d {2}Hit\/Miss\?/gm)).toHaveLength(12);
    const a = replacementExercise({
      seed: 1,
      count: 12,
      maxPage: 4,
      frames: 3,
      policy: 'lru',
      compute: true,
    });
    const refs = /ARG references ([\d,]+)/.exec(a)![1]!.split(',').map(Number);
    // Recompute LRU by hand and compare the miss count.
    const frames: number[] = [];
    let misses = 0;
    for (const r of refs) {
      const i = frames.indexOf(r);
      if (i >= 0) frames.splice(i, 1);
      else {
        misses++;
        if (frames.length === 3) frames.shift();
      }
      frames.push(r);
    }
    expect(a).toContain(`misses ${misses}`);
  });
});
