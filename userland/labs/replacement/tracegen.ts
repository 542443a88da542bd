/**
 * Lab 2's reference strings (the `pages` trace format: page numbers, `w` marks a write), made
 * from a seed so that the files in traces/ can be checked and remade:
 *
 *   npx tsx userland/labs/replacement/tracegen.ts userland/labs/replacement/traces
 *
 * - loop: a loop over 12 pages, 3 of them written each pass (LRU's and FIFO's worst case with
 *   fewer than 12 frames);
 * - hotcold: 80% of references to 8 hot pages (a third of them writes), 20% to 64 cold pages
 *   that are only read;
 * - scan: a written working set of 6 pages while a read-only scan of 40 pages goes by, again
 *   and again (a clean victim is cheaper than a dirty one);
 * - phases: five phases, each with its own set of 10 pages (neighbouring sets overlap).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Prng } from '../../../kernel/lib/prng.ts';

export const TRACE_NAMES = ['loop', 'hotcold', 'scan', 'phases'] as const;
export type TraceName = (typeof TRACE_NAMES)[number];

interface Ref {
  page: number;
  write: boolean;
}

/** The reference string `name` as text, 20 references a line. */
export function traceText(name: TraceName): string {
  const refs = makeTrace(name);
  const lines: string[] = [];
  for (let i = 0; i < refs.length; i += 20)
    lines.push(
      refs
        .slice(i, i + 20)
        .map((r) => `${r.page}${r.write ? 'w' : ''}`)
        .join(','),
    );
  return `${lines.join('\n')}\n`;
}

function makeTrace(name: TraceName): Ref[] {
  const prng = new Prng(TRACE_NAMES.indexOf(name) + 2024);
  const out: Ref[] = [];
  if (name === 'loop') {
    for (let pass = 0; pass < 40; pass++)
      for (let p = 0; p < 12; p++) out.push({ page: p, write: p % 4 === 0 });
  } else if (name === 'hotcold') {
    for (let i = 0; i < 3000; i++) {
      if (prng.below(5) !== 0) out.push({ page: prng.below(8), write: prng.below(3) === 0 });
      else out.push({ page: 100 + prng.below(64), write: false });
    }
  } else if (name === 'scan') {
    for (let round = 0; round < 6; round++) {
      for (let s = 0; s < 40; s++) {
        out.push({ page: 200 + s, write: false });
        const hot = prng.below(6);
        out.push({ page: hot, write: prng.below(2) === 0 });
        if (prng.below(2) === 0) out.push({ page: prng.below(6), write: false });
      }
    }
  } else {
    for (let phase = 0; phase < 5; phase++) {
      const base = phase * 6;
      for (let i = 0; i < 500; i++) {
        const page = base + prng.below(10);
        out.push({ page, write: page % 3 === 0 && prng.below(2) === 0 });
      }
    }
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2];
  if (dir === undefined) {
    process.stderr.write('usage: tracegen.ts DIRECTORY\n');
    process.exit(2);
  }
  for (const name of TRACE_NAMES) writeFileSync(join(dir, `${name}.txt`), traceText(name));
}
