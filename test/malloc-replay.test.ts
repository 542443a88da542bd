/**
 * vmlab malloc-replay's scoring: the heap's high-water mark is the kernel's view of the
 * process, not what the allocator says; and the command's exit status.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type MallocReplayResult, mallocReplay, parseMallocTrace } from '../kernel/boot/mallocreplay.ts';
import { type MALLOC_TRACE_NAMES, mallocTraceText } from '../userland/labs/malloc/tracegen.ts';
import type { Libc } from '../userland/libc/libc.ts';
import type { Allocator } from '../userland/malloc/allocator.ts';
import { ALLOCATOR_NAMES, createAllocator } from '../userland/malloc/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'vmlab-malloc-replay-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MEMORY = 64 * 1024 * 1024;
const lab = (name: (typeof MALLOC_TRACE_NAMES)[number]) =>
  parseMallocTrace(`${name}.rep`, mallocTraceText(name));

/** `inner` with its stats() replaced: what a dishonest submission reports. */
function lying(inner: Allocator, heapBytes: number): Allocator {
  return Object.assign(Object.create(inner) as Allocator, {
    stats: () => ({ ...inner.stats(), heapBytes }),
  });
}

function replay(
  name: string,
  factory?: (libc: Libc) => Allocator,
  trace = lab('random'),
  memoryBytes = MEMORY,
): MallocReplayResult {
  return mallocReplay(trace, name, { memoryBytes, speed: 'none', factory });
}

describe('the heap high-water mark is the kernel’s view', () => {
  it('an allocator that reports heapBytes: 1 gets its true utilization', () => {
    const honest = replay('explicit-first-fit');
    const liar = replay('liar', (libc) => lying(createAllocator('explicit-first-fit', libc), 1));
    expect(liar.outcome).toBe('ok');
    expect(liar.reportedHeapHighWaterBytes).toBe(1);
    expect(liar.heapHighWaterBytes).toBe(honest.heapHighWaterBytes);
    expect(liar.utilization).toBe(honest.utilization);
    expect(liar.utilization).toBeLessThan(1);
  });

  it('counts mappings the allocator made, and libc static storage past its first piece', () => {
    // A bump allocator over memory it hides: its own mmap, or libc's static storage.
    const bump =
      (where: 'mmap' | 'static') =>
      (libc: Libc): Allocator => {
        const region = 4 * 1024 * 1024;
        let base = 0;
        let next = 0;
        const inner = createAllocator('segfit', libc); // for the methods the replay does not call
        return Object.assign(Object.create(inner) as Allocator, {
          malloc(size: number): number {
            if (base === 0) {
              base = where === 'mmap' ? libc.mapAnonymous(region) : libc.staticData(region);
              next = base;
            }
            const p = next;
            next += Math.ceil(Math.max(size, 1) / 16) * 16;
            return next <= base + region ? p : 0;
          },
          free(): void {},
          realloc(ptr: number, size: number): number {
            const p = this.malloc(size);
            if (ptr !== 0) libc.memcpy(p, ptr, Math.min(size, 16));
            return p;
          },
          stats: () => ({ heapBytes: 0, inUseBytes: 0, inUseBlocks: 0 }),
        });
      };
    const trace = parseMallocTrace('small.rep', '1\n2\n3\n1\na 0 100\na 1 200\nf 0\n');
    const mapped = replay('hidden-mmap', bump('mmap'), trace);
    expect(mapped.outcome).toBe('ok');
    expect(mapped.reportedHeapHighWaterBytes).toBe(0);
    expect(mapped.heapHighWaterBytes).toBe(4 * 1024 * 1024);
    const statics = replay('hidden-static', bump('static'), trace);
    expect(statics.outcome).toBe('ok');
    expect(statics.heapHighWaterBytes).toBe(4 * 1024 * 1024 - 4096); // libc's own first page is free
  });

  it("agrees with every built-in allocator's own figure, so their utilization is what it was", () => {
    for (const name of ALLOCATOR_NAMES) {
      for (const t of name.endsWith('-nocoalesce')
        ? (['random'] as const)
        : (['random', 'realloc'] as const)) {
        const r = replay(name, undefined, lab(t));
        expect(r.outcome, `${name} ${t}`).toBe('ok');
        expect(r.heapHighWaterBytes, `${name} ${t}`).toBe(r.reportedHeapHighWaterBytes);
      }
    }
  });
});

describe('vmlab malloc-replay exit status', () => {
  const CLI = join(process.cwd(), 'kernel/boot/vmlab.mjs');
  const vmlab = (...args: string[]) => spawnSync('node', [CLI, ...args], { encoding: 'utf8' });
  const failing = join(dir, 'huge.rep');
  writeFileSync(failing, `1\n1\n2\n1\na 0 ${2 ** 40}\nf 0\n`);
  const passing = join(dir, 'ok.rep');
  writeFileSync(passing, '1\n1\n2\n1\na 0 100\nf 0\n');

  it('is 1 when a trace fails its checks, with --json as without', () => {
    const text = vmlab('malloc-replay', failing, '-a', 'segfit');
    expect(text.status).toBe(1);
    expect(text.stdout).toMatch(/returned NULL \(ENOMEM\)/);
    const json = vmlab('malloc-replay', failing, passing, '-a', 'segfit', '--json');
    expect(json.status).toBe(1);
    const results = JSON.parse(json.stdout) as MallocReplayResult[];
    expect(results.map((r) => r.outcome === 'ok')).toEqual([false, true]);
    expect(results[0]!.outcome).toMatch(/malloc\(1099511627776\) returned NULL \(ENOMEM\)/);
  });

  it('is 0 when every trace replays correctly, with --json', () => {
    const json = vmlab('malloc-replay', passing, '-a', 'segfit', '--json');
    expect(json.status).toBe(0);
    expect(JSON.parse(json.stdout)[0]).toMatchObject({ outcome: 'ok', peakPayloadBytes: 100 });
  });
});
