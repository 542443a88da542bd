/**
 * Lab 3's malloc traces, in CS:APP malloc-lab's format (a header of four numbers: heap size
 * hint, ids, operations, weight; then `a id bytes`, `r id bytes`, `f id`), made from a seed so
 * that the files in traces/ can be checked and remade:
 *
 *   npx tsx userland/labs/malloc/tracegen.ts userland/labs/malloc/traces
 *
 * - random: allocations of mostly small, some medium and a few large sizes, freed at random;
 * - binary: pairs of small and large blocks, the large ones freed, then bigger requests that
 *   the freed holes cannot hold (CS:APP's binary-bal pattern);
 * - realloc: a buffer that grows by realloc while small blocks come and go around it;
 * - coalesce: many small blocks freed in a random order, then requests four times their size
 *   (only coalescing makes room for them);
 * - phases: a phase of small blocks, mostly freed, then a phase of large ones, twice.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Prng } from '../../../kernel/lib/prng.ts';

export const MALLOC_TRACE_NAMES = ['random', 'binary', 'realloc', 'coalesce', 'phases'] as const;
export type MallocTraceName = (typeof MALLOC_TRACE_NAMES)[number];

/** Builds a trace: ids handed out in order, every line checked against the live set. */
class TraceWriter {
  readonly lines: string[] = [];
  readonly live: number[] = [];
  private ids = 0;

  alloc(bytes: number): number {
    const id = this.ids++;
    this.lines.push(`a ${id} ${bytes}`);
    this.live.push(id);
    return id;
  }

  realloc(id: number, bytes: number): void {
    this.lines.push(`r ${id} ${bytes}`);
  }

  free(id: number): void {
    const at = this.live.indexOf(id);
    if (at < 0) throw new Error(`tracegen: block ${id} is not live`);
    this.live.splice(at, 1);
    this.lines.push(`f ${id}`);
  }

  freeAll(prng: Prng): void {
    while (this.live.length > 0) this.free(this.live[prng.below(this.live.length)]!);
  }

  text(): string {
    return `20000\n${this.ids}\n${this.lines.length}\n1\n${this.lines.join('\n')}\n`;
  }
}

/** The trace `name` as text. */
export function mallocTraceText(name: MallocTraceName): string {
  const prng = new Prng(MALLOC_TRACE_NAMES.indexOf(name) + 4096);
  const w = new TraceWriter();
  const size = (): number => {
    const r = prng.below(100);
    if (r < 70) return 1 + prng.below(128);
    if (r < 95) return 129 + prng.below(896);
    return 1025 + prng.below(7168);
  };
  if (name === 'random') {
    for (let i = 0; i < 3000; i++) {
      if (w.live.length === 0 || prng.below(100) < 55) w.alloc(size());
      else w.free(w.live[prng.below(w.live.length)]!);
    }
    w.freeAll(prng);
  } else if (name === 'binary') {
    const large: number[] = [];
    for (let i = 0; i < 600; i++) {
      w.alloc(64);
      large.push(w.alloc(448));
    }
    for (const id of large) w.free(id);
    for (let i = 0; i < 600; i++) w.alloc(512);
    w.freeAll(prng);
  } else if (name === 'realloc') {
    const buffer = w.alloc(512);
    let bytes = 512;
    let small = w.alloc(128);
    for (let i = 0; i < 600; i++) {
      bytes += 256 + prng.below(512);
      w.realloc(buffer, bytes);
      const next = w.alloc(16 + prng.below(240));
      w.free(small);
      small = next;
    }
    w.freeAll(prng);
  } else if (name === 'coalesce') {
    for (let round = 0; round < 4; round++) {
      const ids = Array.from({ length: 400 }, () => w.alloc(16 + prng.below(240)));
      for (const id of shuffled(ids, prng)) w.free(id);
      const big = Array.from({ length: 100 }, () => w.alloc(64 + prng.below(960)));
      for (const id of big) if (prng.below(2) === 0) w.free(id);
    }
    w.freeAll(prng);
  } else {
    for (let round = 0; round < 2; round++) {
      const smalls = Array.from({ length: 800 }, () => w.alloc(8 + prng.below(120)));
      for (const id of smalls) if (prng.below(10) !== 0) w.free(id);
      const larges = Array.from({ length: 60 }, () => w.alloc(2048 + prng.below(6144)));
      for (const id of larges) if (prng.below(2) === 0) w.free(id);
    }
    w.freeAll(prng);
  }
  return w.text();
}

/** The items of `xs` in a seeded random order (Fisher-Yates). */
function shuffled<T>(xs: readonly T[], prng: Prng): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = prng.below(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2];
  if (dir === undefined) {
    process.stderr.write('usage: tracegen.ts DIRECTORY\n');
    process.exit(2);
  }
  for (const name of MALLOC_TRACE_NAMES) writeFileSync(join(dir, `${name}.rep`), mallocTraceText(name));
}
