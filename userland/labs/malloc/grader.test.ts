/**
 * Lab 3 grader: the student's allocator.
 *
 *   VMLAB_STUDENT=path/to/allocator.ts npx vitest run --config test/vitest.config.ts userland/labs/malloc
 *
 * Without VMLAB_STUDENT it grades the reference solution. Correctness first: every lab trace
 * replays with no overlap, misalignment or lost payload (vmlab malloc-replay's checks), and the
 * allocator answers the awkward calls as the C library does while its own checkHeap and
 * liveBlocks agree with what is live. Then the score: utilization (peak live payload over the
 * heap's high-water mark) on each trace and on average, against the thresholds below. The
 * high-water mark is what the kernel sees of the replay process (the brk extent plus the
 * mappings the allocator made), never the allocator's own stats().heapBytes.
 */
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bootKernel, buildMachine } from '../../../kernel/boot/machine.ts';
import {
  type MallocReplayResult,
  mallocReplay,
  parseMallocTrace,
} from '../../../kernel/boot/mallocreplay.ts';
import { loadAllocatorFile } from '../../../kernel/boot/studentcode.ts';
import { Prng } from '../../../kernel/lib/prng.ts';
import type { UserMain } from '../../../kernel/proc/uapi.ts';
import { Libc } from '../../libc/libc.ts';
import { type Allocator, MALLOC_ALIGNMENT } from '../../malloc/allocator.ts';
import { MALLOC_TRACE_NAMES, mallocTraceText } from './tracegen.ts';

/** Average utilization over the lab traces needed to pass. */
const AVERAGE_UTILIZATION = 0.7;
/** Utilization needed on every single trace. */
const TRACE_UTILIZATION = 0.45;

const STUDENT = process.env.VMLAB_STUDENT ?? resolve(import.meta.dirname, 'solution.ts');
let factory: (libc: Libc) => Allocator;

beforeAll(async () => {
  factory = await loadAllocatorFile(STUDENT);
});

/** Run `body` inside a process of a fresh machine with the student's allocator; rethrows its error. */
function inProcess(body: (alloc: Allocator, libc: Libc) => void): void {
  let failure: unknown;
  // biome-ignore lint/correctness/useYield: the body runs to its end in one go
  const main: UserMain = function* (ctx) {
    const libc = new Libc(ctx);
    try {
      body(factory(libc), libc);
    } catch (err) {
      failure = err;
    }
    return 0;
  };
  const m = bootKernel(buildMachine({ memoryBytes: 64 * 1024 * 1024, seed: 1 }), {
    loader: (path) => ({ path, main, textBytes: 65536, dataBytes: 8192, bssBytes: 8192 }),
    tunables: { overcommitMemory: 1 },
  });
  const task = m.kernel.spawn('/usr/bin/labtest', ['labtest']);
  if (typeof task === 'number') throw new Error(`cannot start the test process (errno ${-task})`);
  m.kernel.run();
  m.shutdown();
  if (failure !== undefined) throw failure;
  if (task.waitStatus !== 0) throw new Error(`the test process ended: ${m.kernel.describeEnd(task)}`);
}

const results = new Map<string, MallocReplayResult>();

function replayed(name: (typeof MALLOC_TRACE_NAMES)[number]): MallocReplayResult {
  let r = results.get(name);
  if (r === undefined) {
    r = mallocReplay(parseMallocTrace(`${name}.rep`, mallocTraceText(name)), 'student', { factory });
    results.set(name, r);
  }
  return r;
}

describe('lab 3: malloc', () => {
  it('replays every lab trace correctly (alignment, no overlap, payload kept by realloc)', () => {
    for (const name of MALLOC_TRACE_NAMES) expect(replayed(name).outcome, name).toBe('ok');
  });

  it('answers the awkward calls as the C library does', () => {
    inProcess((a, libc) => {
      a.free(0);
      expect(a.realloc(0, 0), 'realloc(NULL, 0)').toSatisfy((p: number) => p === 0 || p % 16 === 0);
      const p = a.realloc(0, 100);
      expect(p % MALLOC_ALIGNMENT, 'realloc(NULL, 100) is malloc(100)').toBe(0);
      expect(a.usableSize(p), 'usable size of a 100-byte block').toBeGreaterThanOrEqual(100);
      expect(a.realloc(p, 0), 'realloc(p, 0) frees p').toBe(0);
      expect(a.malloc(2 ** 60), 'an absurd malloc').toBe(0);
      expect(a.calloc(2 ** 40, 2 ** 40), 'calloc whose product overflows').toBe(0);
      const dirty = a.malloc(4000);
      libc.memset(dirty, 0xab, 4000);
      a.free(dirty);
      const zeroed = a.calloc(1000, 4);
      const bytes = new Uint8Array(4000);
      libc.ctx.cpu.loadBytes(zeroed, bytes);
      expect(
        bytes.every((b) => b === 0),
        'calloc zeroes reused memory',
      ).toBe(true);
      a.free(zeroed);
      a.checkHeap();
    });
  });

  it('keeps checkHeap, liveBlocks and stats true after every step of a random run', () => {
    inProcess((a) => {
      const prng = new Prng(3);
      const live = new Map<number, number>();
      for (let step = 0; step < 1500; step++) {
        const op = prng.below(3);
        if (op === 0 || live.size === 0) {
          const n = 1 + prng.below(prng.below(4) === 0 ? 5000 : 200);
          const p = a.malloc(n);
          expect(p % MALLOC_ALIGNMENT, `step ${step}: malloc(${n}) alignment`).toBe(0);
          live.set(p, n);
        } else {
          const ptrs = [...live.keys()];
          const p = ptrs[prng.below(ptrs.length)]!;
          if (op === 1) {
            a.free(p);
            live.delete(p);
          } else {
            const n = 1 + prng.below(3000);
            const q = a.realloc(p, n);
            live.delete(p);
            live.set(q, n);
          }
        }
        a.checkHeap();
        const blocks = a.liveBlocks();
        expect(
          blocks.map((b) => b.ptr),
          `step ${step}: liveBlocks() is not the live set`,
        ).toEqual([...live.keys()].sort((x, y) => x - y));
        for (const b of blocks)
          expect(b.size, `step ${step}: block 0x${b.ptr.toString(16)}`).toBeGreaterThanOrEqual(
            live.get(b.ptr)!,
          );
        expect(a.stats().inUseBlocks, `step ${step}: stats().inUseBlocks`).toBe(live.size);
      }
    });
  });

  it(`reaches ${100 * TRACE_UTILIZATION}% utilization on every trace and ${100 * AVERAGE_UTILIZATION}% on average`, () => {
    const lines = [`${'trace'.padEnd(10)} ${'student'.padStart(8)} ${'explicit-first-fit'.padStart(19)}`];
    let sum = 0;
    for (const name of MALLOC_TRACE_NAMES) {
      const r = replayed(name);
      const base = mallocReplay(parseMallocTrace(`${name}.rep`, mallocTraceText(name)), 'explicit-first-fit');
      lines.push(
        `${name.padEnd(10)} ${`${(100 * r.utilization).toFixed(1)}%`.padStart(8)} ${`${(100 * base.utilization).toFixed(1)}%`.padStart(19)}`,
      );
      sum += r.utilization;
    }
    const average = sum / MALLOC_TRACE_NAMES.length;
    lines.push(`${'average'.padEnd(10)} ${`${(100 * average).toFixed(1)}%`.padStart(8)}`);
    process.stdout.write(`\n${lines.join('\n')}\n`);
    for (const name of MALLOC_TRACE_NAMES)
      expect(replayed(name).utilization, `${name}: utilization`).toBeGreaterThanOrEqual(TRACE_UTILIZATION);
    expect(average, 'average utilization').toBeGreaterThanOrEqual(AVERAGE_UTILIZATION);
  });

  it('measures the heap as the kernel sees it: stats().heapBytes changes nothing', () => {
    const name = MALLOC_TRACE_NAMES[0];
    const liar = (libc: Libc): Allocator => {
      const inner = factory(libc);
      return Object.assign(Object.create(inner) as Allocator, {
        stats: () => ({ ...inner.stats(), heapBytes: 1 }),
      });
    };
    const r = mallocReplay(parseMallocTrace(`${name}.rep`, mallocTraceText(name)), 'liar', {
      factory: liar,
      speed: 'none',
    });
    expect(r.reportedHeapHighWaterBytes).toBe(1);
    expect(r.heapHighWaterBytes).toBe(replayed(name).heapHighWaterBytes);
    expect(r.utilization).toBe(replayed(name).utilization);
  });
});
