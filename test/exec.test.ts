/**
 * Programs as files: execve maps a program's text and data privately from its image file
 * (kernel/proc/binfmt.ts), the instruction fetch at each yield faults text pages in from the
 * file through the page cache, every process running the program shares them, and reclaim
 * drops them instead of swapping them.
 */
import { describe, expect, it } from 'vitest';
import { renderStatus } from '../kernel/observe/procpid.ts';
import { buildImageFile, IMAGE_MAGIC, imageLayout } from '../kernel/proc/binfmt.ts';
import type { UserContext } from '../kernel/proc/uapi.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/proc/uapi.ts';
import { bootTestMachine, PAGE, settleFreePages, type TestMachine } from './helpers/kernel.ts';

const FETCH = { fetchStrideBytes: 64 };
const TEXT = 0x400000; // the x86-64 layout's text start

/** Run `count` copies of one program (one image) to the end; their tasks. */
function runCopies(
  count: number,
  body: (ctx: UserContext, i: number, m: TestMachine) => Generator<void, number | undefined, void>,
  options: { memoryMiB?: number; swapMiB?: number } = {},
) {
  const m = bootTestMachine({ tunables: FETCH, ...options });
  let started = 0;
  const path = m.register(function* (ctx) {
    return yield* body(ctx, started++, m);
  }, '/bin/prog');
  const tasks = Array.from({ length: count }, () => {
    const t = m.kernel.spawn(path, [path]);
    if (typeof t === 'number') throw new Error(`spawn: ${t}`);
    return t;
  });
  m.runToEnd();
  return { m, tasks };
}

describe('the image file', () => {
  it('holds a header and never-zero text and data, the same bytes every time', () => {
    const main = function* (): Generator<void, number, void> {
      yield;
      return 0;
    };
    const image = { path: '/bin/x', main, textBytes: 5000, dataBytes: 300, bssBytes: 8192 };
    const a = buildImageFile(image, PAGE);
    expect(a.length).toBe(2 * PAGE + 300); // text rounded to whole pages, then the data
    expect([...a.subarray(0, 4)]).toEqual(IMAGE_MAGIC);
    expect(new DataView(a.buffer).getUint32(12, true)).toBe(5000);
    expect(a.subarray(64).every((b) => b !== 0)).toBe(true);
    expect(buildImageFile(image, PAGE)).toEqual(a);
    expect(buildImageFile({ ...image, path: '/bin/y' }, PAGE)).not.toEqual(a);
    expect(imageLayout(image, PAGE)).toEqual({
      textFileBytes: 2 * PAGE,
      dataOffset: 2 * PAGE,
      fileBytes: 2 * PAGE + 300,
    });
  });
});

describe('text and data from the image', () => {
  it('maps text r-x and data rw- from the image file, bss anonymous', () => {
    const seen: string[] = [];
    runCopies(1, function* ({ sys }) {
      for (const e of sys.vmlab_maps().slice(0, 3)) seen.push(`${e.start.toString(16)} ${e.prot}`);
      yield;
      return 0;
    });
    expect(seen).toEqual(['400000 5', '402000 3', '403000 3']); // r-x text (8 KiB), rw- data, rw- bss
  });

  it('text pages fault in from the file once and are shared by every process running the program', () => {
    const phys: number[] = [];
    const { m, tasks } = runCopies(3, function* ({ sys }, i) {
      for (let n = 0; n < 300; n++) yield; // the program counter walks both text pages
      phys[i] = sys.vmlab_pageinfo(TEXT).physAddr;
      return 0;
    });
    for (const t of tasks) expect(t.waitStatus).toBe(0);
    expect(new Set(phys).size).toBe(1); // one page-cache frame for all three
    expect(phys[0]).toBeGreaterThan(0);
    // The first process reads the text from the file (major faults); the others find it cached.
    expect(tasks[0]!.majFlt).toBeGreaterThan(0);
    expect(tasks[1]!.majFlt + tasks[2]!.majFlt).toBe(0);
    expect(tasks[1]!.minFlt).toBeGreaterThanOrEqual(2);
    // Both text pages stay cached after exit, and the data page that readahead brought in.
    expect(m.kernel.pageCache.nrPages).toBe(3);
    expect(m.kernel.hw.mmu.itlb.hits).toBeGreaterThan(0);
  });

  it('counts text pages as RssFile, and a write to data copies it (the file is never written)', () => {
    let status = '';
    const { m } = runCopies(1, function* ({ cpu, sys }, _i, m) {
      for (let n = 0; n < 200; n++) yield;
      const data = TEXT + 2 * PAGE;
      const before = cpu.load8(data + 100); // initialised data, from the file
      cpu.store8(data + 100, before ^ 0xff);
      const info = sys.vmlab_pageinfo(data);
      status = renderStatus([...m.kernel.tasks.values()].find((t) => t.comm === 'prog')!);
      return before !== 0 && info.writable && !info.shared ? 0 : 1;
    });
    expect(/RssFile:\s+(\d+) kB/.exec(status)![1]).toBe('8'); // two text pages
    const image = [...m.kernel.fs.inodes()].find((i) => i.path === '/bin/prog');
    expect(image).toBeDefined();
    expect(image!.hostSizeBytes).toBe(image!.sizeBytes); // no writeback ever grew or changed it
    expect(m.kernel.pageCache.nrDirty).toBe(0);
  });

  it('under memory pressure text pages are dropped, not swapped, and read again when needed', () => {
    const pages = 3000; // 12 MiB of anonymous memory in an 8 MiB machine with swap
    const { m, tasks } = runCopies(
      1,
      function* ({ cpu, sys }) {
        const a = sys.mmap(0, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        for (let r = 0; r < 2; r++) {
          for (let p = 0; p < pages; p++) {
            if (r === 0) cpu.store32(a + p * PAGE, p);
            else if (cpu.load32(a + p * PAGE) !== p) return 1;
            yield;
          }
        }
        return 0;
      },
      { memoryMiB: 8, swapMiB: 32 },
    );
    expect(tasks[0]!.waitStatus).toBe(0);
    const e = m.kernel.events;
    expect(e.pgsteal_file).toBeGreaterThan(0); // text pages were reclaimed …
    expect(e.pgmajfault).toBeGreaterThan(e.pswpin); // … and read again from the file
    expect(e.pswpout).toBeGreaterThan(0);
  });

  it('forked children share the text and run from the same program counter', () => {
    const { m, tasks } = runCopies(1, function* ({ sys }) {
      for (let n = 0; n < 10; n++) yield;
      const child = sys.fork(function* ({ sys: s }) {
        for (let n = 0; n < 200; n++) yield;
        return s.vmlab_pageinfo(TEXT).mapCount >= 2 ? 0 : 1;
      });
      for (let n = 0; n < 400; n++) yield;
      yield* sys.wait4(child, 0, 0);
      return 0;
    });
    expect(tasks[0]!.waitStatus).toBe(0);
    const child = [...m.kernel.tasks.values()].find((t) => t.ppid === tasks[0]!.pid);
    expect(child?.waitStatus ?? 0).toBe(0);
    expect(tasks[0]!.majFlt).toBeGreaterThan(0);
  });

  it('nothing leaks: once every process has exited and the cache is dropped, memory is as at boot', () => {
    const m = bootTestMachine({ tunables: FETCH });
    const free0 = settleFreePages(m);
    const path = m.register(function* () {
      for (let n = 0; n < 300; n++) yield;
      return 0;
    });
    for (let i = 0; i < 4; i++) m.kernel.spawn(path, [path]);
    m.runToEnd();
    expect(m.kernel.pageCache.dropCaches()).toBe(3); // text, and data read ahead
    expect(m.kernel.fs.inodes()).toEqual([]);
    expect(settleFreePages(m)).toBe(free0);
  });
});
