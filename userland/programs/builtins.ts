/**
 * Built-in programs, as execve finds them under /bin. Each is a generator over the user API
 * (kernel/proc/uapi.ts): it reaches memory through `cpu` and the kernel through `sys`, and
 * yields at least once per loop iteration.
 */

import {
  EIO,
  errnoName,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  MS_SYNC,
  O_CREAT,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  PROT_READ,
  PROT_WRITE,
  type ProgramImage,
  type ProgramLoader,
  SEEK_END,
  type UserContext,
  type UserMain,
} from '../../kernel/proc/uapi.ts';
import { Libc, withLibc } from '../libc/libc.ts';
import { Malloc } from '../libc/malloc.ts';
import { binarytrees, cycleleak, gccache, listchurn } from './gcprograms.ts';
import { free, pmap } from './procps.ts';

const PAGE_GUESS = 4096;

function argNum(ctx: UserContext, i: number, fallback: number): number {
  const v = ctx.argv[i];
  if (v === undefined) return fallback;
  const n = Number(v);
  return Number.isFinite(n) ? n : fallback;
}

/** touch PAGES [ROUNDS]: map PAGES anonymous pages and write then read each page ROUNDS times. */
const touch: UserMain = function* (ctx) {
  const { cpu, sys } = ctx;
  const pages = argNum(ctx, 1, 64);
  const rounds = argNum(ctx, 2, 2);
  const base = sys.mmap(0, pages * PAGE_GUESS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base < 0) return 1;
  for (let r = 0; r < rounds; r++) {
    for (let p = 0; p < pages; p++) {
      const va = base + p * PAGE_GUESS;
      if (r === 0) cpu.store32(va, p);
      else if (cpu.load32(va) !== p) return 2;
      yield;
    }
  }
  return 0;
};

/** cowdemo PAGES: fill a heap, fork, the child writes half the pages, both verify. */
const cowdemo: UserMain = function* (ctx) {
  const { cpu, sys } = ctx;
  const pages = argNum(ctx, 1, 32);
  const start = sys.brk(0);
  const end = sys.brk(start + pages * PAGE_GUESS);
  if (end !== start + pages * PAGE_GUESS) return 1;
  for (let p = 0; p < pages; p++) {
    cpu.store32(start + p * PAGE_GUESS, 1000 + p);
    yield;
  }
  const child = sys.fork(function* (c) {
    for (let p = 0; p < pages / 2; p++) {
      c.cpu.store32(start + p * PAGE_GUESS, 2000 + p);
      yield;
    }
    for (let p = 0; p < pages; p++) {
      const want = p < pages / 2 ? 2000 + p : 1000 + p;
      if (c.cpu.load32(start + p * PAGE_GUESS) !== want) return 3;
      yield;
    }
    return 0;
  });
  if (child < 0) return 4;
  const status = yield* sys.wait4(child, 0, 0);
  if (status !== child) return 5;
  for (let p = 0; p < pages; p++) {
    if (cpu.load32(start + p * PAGE_GUESS) !== 1000 + p) return 6;
    yield;
  }
  return 0;
};

/** segv: touch an unmapped address (the kernel kills it with SIGSEGV). */
const segv: UserMain = function* (ctx) {
  yield;
  ctx.cpu.store8(0x10, 1);
  return 0;
};

/** sleep NS: sleep for NS nanoseconds of emulated time. */
const sleep: UserMain = function* (ctx) {
  yield* ctx.sys.nanosleep(argNum(ctx, 1, 1_000_000));
  return 0;
};

// ---- helpers shared by the programs below ----

/** A whole-number argument in [min, max], or undefined when it is missing or malformed. */
function argInt(
  ctx: UserContext,
  i: number,
  range: { min: number; max: number; fallback?: number },
): number | undefined {
  const v = ctx.argv[i];
  if (v === undefined) return range.fallback;
  const n = Number(v);
  return Number.isInteger(n) && n >= range.min && n <= range.max ? n : undefined;
}

/** Print `text` and a newline on stderr; the exit status for a bad argument or a failed call (2). */
function complain(ctx: UserContext, text: string): number {
  new Libc(ctx).puts(`${text}\n`, 2);
  return 2;
}

/**
 * A tiny seeded PRNG (mulberry32): 32-bit state, a full period of 2^32, good enough to pick
 * pages. The same seed gives the same stream.
 */
class Rand {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A whole number in [0, n). */
  below(n: number): number {
    return Math.floor((this.nextU32() / 4294967296) * n);
  }
}

/** Anonymous private read-write memory: its address, or -errno. */
function mapAnon(ctx: UserContext, bytes: number): number {
  return ctx.sys.mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

/** The word each page's first 4 bytes hold in randaccess and thrashmix: its index + 1 (0: never written). */
const pageStamp = (page: number): number => page + 1;

// ---- matrix ----

type MatrixOrder = 'row' | 'col';

/**
 * matrix N [row|col|both]: an N×N matrix of 8-byte elements in anonymous memory, walked twice:
 * a walk that stores a[i][j] = i*N + j, then one that loads every element and checks the sum.
 * `row` makes both walks row-major, `col` both column-major, and `both` (the default) writes
 * row-major and reads column-major. A row is N*8 bytes: once two rows no longer share a page, a
 * column-major walk touches a new page on every access and misses in the TLB on most of them,
 * where a row-major walk misses once per page. Prints a line per walk; exit 1 on a wrong sum.
 */
const matrix: UserMain = function* (ctx) {
  const n = argInt(ctx, 1, { min: 1, max: 4096 });
  const order = ctx.argv[2] ?? 'both';
  if (n === undefined || !['row', 'col', 'both'].includes(order))
    return complain(ctx, 'usage: matrix N [row|col|both]');
  const walks: MatrixOrder[] =
    order === 'both' ? ['row', 'col'] : [order as MatrixOrder, order as MatrixOrder];
  const base = mapAnon(ctx, n * n * 8);
  if (base < 0) return complain(ctx, `matrix: mmap: ${errnoName(base)}`);
  const libc = new Libc(ctx);
  const want = (n * n * (n * n - 1)) / 2;
  for (const [pass, walk] of walks.entries()) {
    let sum = 0;
    for (let outer = 0; outer < n; outer++) {
      for (let inner = 0; inner < n; inner++) {
        const element = walk === 'row' ? outer * n + inner : inner * n + outer; // i*N + j
        const va = base + element * 8;
        if (pass === 0) ctx.cpu.store64(va, element);
        else sum += ctx.cpu.load64(va);
        yield;
      }
    }
    const what = pass === 0 ? 'written' : `sum ${sum}`;
    libc.puts(`matrix: ${n}x${n} ${walk === 'row' ? 'row-major' : 'column-major'} walk, ${what}\n`);
    if (pass > 0 && sum !== want) return 1;
  }
  return 0;
};

// ---- randaccess ----

/**
 * randaccess PAGES COUNT [SEED]: COUNT accesses to random pages of a PAGES-page anonymous
 * mapping (SEED, or the process's seed, picks them), half stores and half loads of the page's
 * first word, which holds its index + 1 once written; a load checks it (exit 1 on a mismatch).
 * With PAGES larger than memory the working set does not fit: with swap, pages go out and come
 * back as major faults (thrashing); without, the OOM killer ends it.
 */
const randaccess: UserMain = function* (ctx) {
  const pages = argInt(ctx, 1, { min: 1, max: 1 << 24 });
  const count = argInt(ctx, 2, { min: 0, max: 2 ** 40 });
  const seed = argInt(ctx, 3, { min: 0, max: 0xffffffff, fallback: ctx.seed });
  if (pages === undefined || count === undefined || seed === undefined)
    return complain(ctx, 'usage: randaccess PAGES COUNT [SEED]');
  const base = mapAnon(ctx, pages * PAGE_GUESS);
  if (base < 0) return complain(ctx, `randaccess: mmap: ${errnoName(base)}`);
  const rand = new Rand(seed);
  for (let k = 0; k < count; k++) {
    const page = rand.below(pages);
    const va = base + page * PAGE_GUESS;
    if (rand.below(2) === 0) ctx.cpu.store32(va, pageStamp(page));
    else {
      const got = ctx.cpu.load32(va);
      if (got !== 0 && got !== pageStamp(page)) return 1;
    }
    yield;
  }
  new Libc(ctx).puts(`randaccess: ${count} accesses over ${pages} pages\n`);
  return 0;
};

// ---- forktree ----

interface ForkTreeShape {
  pages: number;
  /** The heap: `pages` pages, then one page for the wait status. */
  heap: number;
  depth: number;
}

/** The word forktree's process `id` writes to page `page` (ids and pages stay below 2^13 and 2^16). */
const forkTag = (id: number, page: number): number => id * 65536 + page;

/**
 * forktree DEPTH [PAGES]: a binary tree of 2^(DEPTH+1) - 1 processes (DEPTH 0 to 12). The root
 * fills PAGES pages of heap (default 8, at least 2). Every process, numbered as in a heap (the
 * root is 1, the children of k are 2k and 2k+1), writes its number into the first half of the
 * pages it inherited (copy-on-write faults: its parent still maps them), checks that the second
 * half still holds the root's values (shared by the whole tree, never copied), and, above
 * DEPTH, forks two children, waits for both and checks its own half again (its children wrote
 * to their own copies). Exit 0 when the whole subtree checked out; 1 on a wrong value, 3 when a
 * fork failed, 4 when a child did not exit 0.
 */
const forktree: UserMain = function* (ctx) {
  const depth = argInt(ctx, 1, { min: 0, max: 12 });
  const pages = argInt(ctx, 2, { min: 2, max: 4096, fallback: 8 });
  if (depth === undefined || pages === undefined) return complain(ctx, 'usage: forktree DEPTH [PAGES]');
  const heap = Math.ceil(ctx.sys.brk(0) / PAGE_GUESS) * PAGE_GUESS;
  const end = heap + (pages + 1) * PAGE_GUESS;
  if (ctx.sys.brk(end) !== end) return complain(ctx, 'forktree: brk: ENOMEM');
  for (let p = 0; p < pages; p++) {
    ctx.cpu.store32(heap + p * PAGE_GUESS, forkTag(1, p));
    yield;
  }
  const status = yield* forkNode({ pages, heap, depth }, { level: 0, id: 1 })(ctx);
  if (status === 0) new Libc(ctx).puts(`forktree: ${2 ** (depth + 1) - 1} processes checked their pages\n`);
  return status;
};

/** One process of forktree's tree, at `level` (the root is 0) with number `id`. */
function forkNode(shape: ForkTreeShape, node: { level: number; id: number }): UserMain {
  return function* ({ cpu, sys }) {
    const { pages, heap, depth } = shape;
    const half = Math.floor(pages / 2);
    const at = (p: number): number => heap + p * PAGE_GUESS;
    for (let p = 0; p < half && node.id !== 1; p++) {
      cpu.store32(at(p), forkTag(node.id, p));
      yield;
    }
    for (let p = half; p < pages; p++) {
      if (cpu.load32(at(p)) !== forkTag(1, p)) return 1;
      yield;
    }
    if (node.level === depth) return 0;
    let status = 0;
    for (const id of [2 * node.id, 2 * node.id + 1]) {
      const pid = sys.fork(forkNode(shape, { level: node.level + 1, id }));
      if (pid < 0) {
        status = 3;
        break;
      }
    }
    const statusVa = at(pages);
    for (;;) {
      const pid = yield* sys.wait4(-1, statusVa, 0);
      if (pid < 0) break; // ECHILD: every child reaped
      if (cpu.load32(statusVa) !== 0 && status === 0) status = 4;
    }
    for (let p = 0; p < half; p++) {
      if (cpu.load32(at(p)) !== forkTag(node.id, p)) return 1;
      yield;
    }
    return status;
  };
}

// ---- leaky ----

/**
 * leaky [KB_PER_REQUEST] [REQUESTS]: a server that handles REQUESTS requests (default 100000),
 * each in a buffer of KB_PER_REQUEST KiB (default 64) that it mallocs and fills. It frees three
 * buffers in four (a seeded choice) and forgets the others, so its heap grows until the OOM
 * killer takes it or the requests run out. The allocator is the C library's, as the
 * environment sets it up (VMLAB_MALLOC, default ptmalloc; VMLAB_LEAK_CHECK for the leak report
 * at exit). Prints a line to stdout per 100 requests; exit 1 when malloc fails, 2 for a bad
 * argument or environment.
 */
const leaky: UserMain = withLibc(function* (libc) {
  const ctx = libc.ctx;
  const kb = argInt(ctx, 1, { min: 1, max: 1 << 20, fallback: 64 });
  const requests = argInt(ctx, 2, { min: 0, max: 2 ** 40, fallback: 100_000 });
  if (kb === undefined || requests === undefined)
    return complain(ctx, 'usage: leaky [KB_PER_REQUEST] [REQUESTS]');
  let heap: Malloc;
  try {
    heap = new Malloc(libc);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    libc.puts(`leaky: ${err.message}\n`, 2);
    return 2;
  }
  const rand = new Rand(ctx.seed);
  let leakedKiB = 0;
  for (let r = 1; r <= requests; r++) {
    const buf = heap.malloc(kb * 1024);
    if (buf === 0) {
      libc.puts(`leaky: malloc(${kb * 1024}) failed at request ${r}: ${errnoName(libc.errno)}\n`, 2);
      return 1;
    }
    libc.memset(buf, r & 0xff, kb * 1024);
    ctx.cpu.compute(20_000); // handling the request
    if (rand.below(4) === 0) leakedKiB += kb;
    else heap.free(buf);
    if (r % 100 === 0) libc.puts(`leaky: ${r} requests, ${leakedKiB} KiB leaked\n`);
    yield;
  }
  return 0;
});

// ---- mapwriter, mapreader ----

/** The first words of a mapwriter file: magic, seed, pages; the rest of it is the pattern. */
const MAPFILE_MAGIC = 0x626c6d76; // 'vmlb' in memory order
const MAPFILE_HEADER_BYTES = 12;

/** Page `page` of the pattern for `seed`: 32-bit words of a PRNG seeded by both. */
function mapfilePage(seed: number, page: number, out: Uint8Array): void {
  const rand = new Rand((seed ^ Math.imul(page + 1, 0x9e3779b9)) >>> 0);
  const words = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let off = 0; off + 4 <= out.byteLength; off += 4) words.setUint32(off, rand.nextU32(), true);
}

/**
 * mapwriter FILE PAGES [SEED]: create (or truncate) FILE with PAGES pages, map it MAP_SHARED,
 * write a pattern seeded by SEED (default: the process's seed) a page at a time, with a header
 * (magic, seed, pages) in its first 12 bytes, msync it (MS_SYNC: the pages reach the file) and
 * unmap it. mapreader checks it. Exit 2 when the file cannot be created or mapped.
 */
const mapwriter: UserMain = function* (ctx) {
  const { cpu, sys } = ctx;
  const path = ctx.argv[1];
  const pages = argInt(ctx, 2, { min: 1, max: 1 << 20 });
  const seed = argInt(ctx, 3, { min: 0, max: 0xffffffff, fallback: ctx.seed });
  if (path === undefined || pages === undefined || seed === undefined)
    return complain(ctx, 'usage: mapwriter FILE PAGES [SEED]');
  const length = pages * PAGE_GUESS;
  const fd = sys.open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644);
  if (fd < 0) return complain(ctx, `mapwriter: ${path}: ${errnoName(fd)}`);
  const truncated = sys.ftruncate(fd, length);
  if (truncated < 0) return complain(ctx, `mapwriter: ${path}: ${errnoName(truncated)}`);
  const base = sys.mmap(0, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base < 0) return complain(ctx, `mapwriter: ${path}: ${errnoName(base)}`);
  const buf = new Uint8Array(PAGE_GUESS);
  for (let p = 0; p < pages; p++) {
    mapfilePage(seed, p, buf);
    cpu.storeBytes(base + p * PAGE_GUESS, buf);
    yield;
  }
  cpu.store32(base, MAPFILE_MAGIC);
  cpu.store32(base + 4, seed);
  cpu.store32(base + 8, pages);
  const synced = sys.msync(base, length, MS_SYNC);
  yield;
  if (synced < 0) return complain(ctx, `mapwriter: ${path}: ${errnoName(synced)}`);
  sys.munmap(base, length);
  sys.close(fd);
  new Libc(ctx).puts(`mapwriter: ${path}: ${pages} pages written\n`);
  return 0;
};

/**
 * mapreader FILE: map a file mapwriter wrote (MAP_SHARED, read-only) and check its header and
 * its pattern a page at a time. Exit 0 when every byte matches, 1 on the first mismatch (or a
 * file that is not mapwriter's), 2 when the file cannot be opened or mapped.
 */
const mapreader: UserMain = function* (ctx) {
  const { cpu, sys } = ctx;
  const path = ctx.argv[1];
  if (path === undefined) return complain(ctx, 'usage: mapreader FILE');
  const fd = sys.open(path, O_RDONLY);
  if (fd < 0) return complain(ctx, `mapreader: ${path}: ${errnoName(fd)}`);
  const length = sys.lseek(fd, 0, SEEK_END);
  if (length < 0) return complain(ctx, `mapreader: ${path}: ${errnoName(length)}`);
  const libc = new Libc(ctx);
  const refuse = (why: string): number => {
    libc.puts(`mapreader: ${path}: ${why}\n`, 2);
    return 1;
  };
  if (length === 0 || length % PAGE_GUESS !== 0) return refuse(`not a mapwriter file (${length} bytes)`);
  const base = sys.mmap(0, length, PROT_READ, MAP_SHARED, fd, 0);
  if (base < 0) return complain(ctx, `mapreader: ${path}: ${errnoName(base)}`);
  const pages = length / PAGE_GUESS;
  if (cpu.load32(base) !== MAPFILE_MAGIC || cpu.load32(base + 8) !== pages)
    return refuse('not a mapwriter file (bad header)');
  const seed = cpu.load32(base + 4);
  const want = new Uint8Array(PAGE_GUESS);
  const got = new Uint8Array(PAGE_GUESS);
  for (let p = 0; p < pages; p++) {
    mapfilePage(seed, p, want);
    cpu.loadBytes(base + p * PAGE_GUESS, got);
    for (let off = p === 0 ? MAPFILE_HEADER_BYTES : 0; off < PAGE_GUESS; off++)
      if (got[off] !== want[off]) return refuse(`mismatch at byte ${p * PAGE_GUESS + off}`);
    yield;
  }
  sys.munmap(base, length);
  sys.close(fd);
  libc.puts(`mapreader: ${path}: ${pages} pages verified\n`);
  return 0;
};

// ---- filecat ----

const FILECAT_BUFFER_BYTES = 16384;

/**
 * filecat FILE: read() FILE into a 16 KiB buffer and write() each piece to stdout (fd 1) until
 * the end of the file. Exit 2 (with a line on stderr) when it cannot be opened, read or written.
 */
const filecat: UserMain = function* (ctx) {
  const { sys } = ctx;
  const path = ctx.argv[1];
  if (path === undefined) return complain(ctx, 'usage: filecat FILE');
  const fd = sys.open(path, O_RDONLY);
  if (fd < 0) return complain(ctx, `filecat: ${path}: ${errnoName(fd)}`);
  const buf = mapAnon(ctx, FILECAT_BUFFER_BYTES);
  if (buf < 0) return complain(ctx, `filecat: ${path}: ${errnoName(buf)}`);
  for (;;) {
    const n = sys.read(fd, buf, FILECAT_BUFFER_BYTES);
    yield; // a read from the disk sleeps here
    if (n < 0) return complain(ctx, `filecat: ${path}: ${errnoName(n)}`);
    if (n === 0) break;
    for (let done = 0; done < n; ) {
      const w = sys.write(1, buf + done, n - done);
      if (w <= 0) return complain(ctx, `filecat: stdout: ${errnoName(w < 0 ? w : EIO)}`);
      done += w;
    }
  }
  sys.close(fd);
  return 0;
};

// ---- thrashmix ----

/**
 * thrashmix PAGES ROUNDS: a hot set and a streaming scan in one PAGES-page mapping (at least 2
 * pages). The first quarter of the pages is the hot set, the rest the stream. Each of ROUNDS
 * rounds (default 4) writes every stream page once, in order, and after each one reads the next
 * two hot pages in turn, so a hot page is referenced every few steps and a stream page once per
 * round. With memory for the hot set but not for all of it, a policy that sees references (lru,
 * clock, lru-2list) keeps the hot set and faults on the stream only; fifo evicts hot pages as the
 * stream pushes through, and they fault back in. Exit 1 when a hot page reads back wrong.
 */
const thrashmix: UserMain = function* (ctx) {
  const { cpu } = ctx;
  const pages = argInt(ctx, 1, { min: 2, max: 1 << 24 });
  const rounds = argInt(ctx, 2, { min: 0, max: 1 << 20, fallback: 4 });
  if (pages === undefined || rounds === undefined) return complain(ctx, 'usage: thrashmix PAGES [ROUNDS]');
  const base = mapAnon(ctx, pages * PAGE_GUESS);
  if (base < 0) return complain(ctx, `thrashmix: mmap: ${errnoName(base)}`);
  const hot = Math.max(1, Math.floor(pages / 4));
  const at = (p: number): number => base + p * PAGE_GUESS;
  for (let h = 0; h < hot; h++) {
    cpu.store32(at(h), pageStamp(h));
    yield;
  }
  let next = 0;
  for (let r = 0; r < rounds; r++) {
    for (let s = hot; s < pages; s++) {
      cpu.store32(at(s), pageStamp(s));
      for (let k = 0; k < 2; k++, next = (next + 1) % hot)
        if (cpu.load32(at(next)) !== pageStamp(next)) return 1;
      yield;
    }
  }
  new Libc(ctx).puts(`thrashmix: ${hot} hot pages, ${pages - hot} streamed, ${rounds} rounds\n`);
  return 0;
};

function image(
  path: string,
  main: UserMain,
  sizes: Partial<Omit<ProgramImage, 'path' | 'main'>> = {},
): ProgramImage {
  return {
    path,
    main,
    textBytes: sizes.textBytes ?? 8192,
    dataBytes: sizes.dataBytes ?? 4096,
    bssBytes: sizes.bssBytes ?? 4096,
  };
}

export const BUILTIN_PROGRAMS: Readonly<Record<string, ProgramImage>> = {
  '/bin/touch': image('/bin/touch', touch),
  '/bin/cowdemo': image('/bin/cowdemo', cowdemo),
  '/bin/segv': image('/bin/segv', segv),
  '/bin/sleep': image('/bin/sleep', sleep),
  '/bin/matrix': image('/bin/matrix', matrix),
  '/bin/randaccess': image('/bin/randaccess', randaccess),
  '/bin/forktree': image('/bin/forktree', forktree),
  // leaky links the C library and its allocators: more text, and their tables in data and bss.
  '/bin/leaky': image('/bin/leaky', leaky, { textBytes: 65536, dataBytes: 8192, bssBytes: 16384 }),
  '/bin/mapwriter': image('/bin/mapwriter', mapwriter, { textBytes: 12288 }),
  '/bin/mapreader': image('/bin/mapreader', mapreader, { textBytes: 12288 }),
  '/bin/filecat': image('/bin/filecat', filecat, { textBytes: 4096, bssBytes: 0 }),
  '/bin/thrashmix': image('/bin/thrashmix', thrashmix),
  '/bin/free': image('/bin/free', free, { textBytes: 4096, bssBytes: 0 }),
  '/bin/pmap': image('/bin/pmap', pmap, { textBytes: 4096, bssBytes: 0 }),
  // Managed-heap programs (gcprograms.ts): the collector from VMLAB_GC.
  '/bin/binarytrees': image('/bin/binarytrees', binarytrees()),
  '/bin/listchurn': image('/bin/listchurn', listchurn()),
  '/bin/gccache': image('/bin/gccache', gccache()),
  '/bin/cycleleak': image('/bin/cycleleak', cycleleak()),
};

/** The loader for built-ins: '/bin/NAME' or just 'NAME'. */
export const loadBuiltin: ProgramLoader = (path) => {
  const full = path.startsWith('/') ? path : `/bin/${path}`;
  return Object.hasOwn(BUILTIN_PROGRAMS, full) ? BUILTIN_PROGRAMS[full] : undefined;
};
