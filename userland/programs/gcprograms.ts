/**
 * Programs over a managed heap (userland/gc/runtime.ts): object graphs whose memory a garbage
 * collector manages, inside the process's emulated memory. The collector comes from the
 * environment (VMLAB_GC, GOGC, VMLAB_GC_INCREMENTAL, which ManagedHeap reads, and
 * VMLAB_GC_CYCLES=0|1 for refcount's cycle detection, read here), so the same program runs
 * under every collector; a test may pass a collector factory of its own instead.
 *
 *   binarytrees [DEPTH]            the Benchmarks Game's binary-trees (default depth 10)
 *   listchurn [N] [ROUNDS]         a queue of N nodes, each round enqueues N and dequeues N
 *   gccache [ENTRIES] [OPS] [HOT]  a long-lived hash table, lookups, replacements, per-op garbage
 *   cycleleak [N]                  N cycles (pairs and rings) made and dropped
 *
 * Every program yields at least once per loop iteration (the building and checking of a tree
 * yield once per node), checks what it computes (exit 1 on a wrong result), destroys its heap
 * before it exits 0, and prints a last line with its result. A bad argument or environment
 * variable prints a usage line on stderr and exits 2. References follow the runtime's rule:
 * valid until the next allocation, so every program keeps what it needs in root slots or
 * fields and reads it back from there.
 */
import type { UserContext, UserMain } from '../../kernel/proc/uapi.ts';
import type { CollectorFactory, GcTunables } from '../gc/collector.ts';
import { ManagedHeap } from '../gc/runtime.ts';
import { Libc } from '../libc/libc.ts';

export interface GcProgramOptions {
  /** A collector factory to use instead of $VMLAB_GC (tests). */
  collector?: CollectorFactory;
}

/** Object type tags (the collectors never read them; a heap dump could). */
const T_NODE = 1;
const T_QUEUE = 2;
const T_MESSAGE = 3;
const T_TABLE = 4;
const T_ENTRY = 5;
const T_VALUE = 6;
const T_CYCLE = 7;

// ---- shared helpers ----

/** Argument `i` as a whole number in [min, max]; `fallback` when absent; undefined when malformed. */
function argInt(
  ctx: UserContext,
  i: number,
  range: { min: number; max: number; fallback: number },
): number | undefined {
  const v = ctx.argv[i];
  if (v === undefined) return range.fallback;
  const n = Number(v);
  return Number.isInteger(n) && n >= range.min && n <= range.max ? n : undefined;
}

/** Print `text` and a newline on stderr; the exit status for a bad argument (2). */
function complain(libc: Libc, text: string): number {
  libc.puts(`${text}\n`, 2);
  return 2;
}

/**
 * The program's heap: the collector from `options`, else from the environment; tunables from
 * the environment (VMLAB_GC_CYCLES here, the rest in ManagedHeap). A string (the message for
 * stderr) when the environment names no collector or a bad value.
 */
function openHeap(libc: Libc, options: GcProgramOptions, roots: { globals: number }): ManagedHeap | string {
  const tunables: Partial<GcTunables> = {};
  const cycles = libc.ctx.env.VMLAB_GC_CYCLES;
  if (cycles !== undefined) {
    if (cycles !== '0' && cycles !== '1') return `VMLAB_GC_CYCLES: '${cycles}' is not 0 or 1`;
    tunables.cycleCollector = cycles === '1';
  }
  try {
    return new ManagedHeap(libc, { collector: options.collector, tunables, globals: roots.globals });
  } catch (err) {
    if (err instanceof RangeError) return err.message;
    throw err;
  }
}

/** mulberry32: a 32-bit seeded PRNG (the same seed, the same stream). */
class Rand {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** The next 32-bit value. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A whole number in [0, n). */
  below(n: number): number {
    return this.next() % n;
  }
}

// ---- binarytrees ----

const MIN_DEPTH = 4;

/**
 * A complete binary tree of `depth` (2^(depth+1) - 1 nodes of two fields and no data), built
 * bottom-up as the benchmark's bottomUpTree does; its root is left on top of the shadow stack.
 * A node's children are on the stack while it is made, so a collection keeps (and a moving one
 * updates) them; then the node takes the left child's slot and the right child's goes.
 */
function* bottomUpTree(heap: ManagedHeap, depth: number): Generator<void, void, void> {
  if (depth > 0) {
    yield* bottomUpTree(heap, depth - 1);
    yield* bottomUpTree(heap, depth - 1);
  }
  const node = heap.alloc(2, 0, T_NODE);
  if (depth > 0) {
    // Stack: ... left right node.
    heap.set(node, 0, heap.top(2));
    heap.set(node, 1, heap.top(1));
    heap.setSlot(heap.depth() - 3, node);
    heap.pop(2);
  }
  yield;
}

/** The benchmark's itemCheck: 1 for a leaf, 1 + both subtrees' checks for a node (no allocation). */
function* itemCheck(heap: ManagedHeap, node: number): Generator<void, number, void> {
  const left = heap.get(node, 0);
  if (left === 0) return 1;
  const right = heap.get(node, 1);
  const l = yield* itemCheck(heap, left);
  const r = yield* itemCheck(heap, right);
  yield;
  return 1 + l + r;
}

/** What itemCheck of a tree of `depth` must give: its node count, 2^(depth+1) - 1. */
export function treeCheck(depth: number): number {
  return 2 ** (depth + 1) - 1;
}

/**
 * binarytrees [DEPTH]: the Computer Language Benchmarks Game's binary-trees with max depth
 * max(6, DEPTH) (default 10): a stretch tree of depth max+1, a long-lived tree of depth max
 * (kept in global 0), then for d = 4, 6, ... max, 2^(max-d+4) trees of depth d built, checked
 * and dropped; the benchmark's lines, the long-lived tree's last. Exit 1 when a check is not
 * 2^(d+1) - 1.
 */
export function binarytrees(options: GcProgramOptions = {}): UserMain {
  return function* (ctx) {
    const libc = new Libc(ctx);
    const n = argInt(ctx, 1, { min: 0, max: 22, fallback: 10 });
    if (n === undefined) return complain(libc, 'usage: binarytrees [DEPTH] (0 to 22)');
    const heap = openHeap(libc, options, { globals: 1 });
    if (typeof heap === 'string') return complain(libc, `binarytrees: ${heap}`);
    const maxDepth = Math.max(MIN_DEPTH + 2, n);
    const wrong = (what: string, got: number, depth: number): number => {
      libc.puts(`binarytrees: ${what} check ${got}, not ${treeCheck(depth)}\n`, 2);
      return 1;
    };
    const stretchDepth = maxDepth + 1;
    yield* bottomUpTree(heap, stretchDepth);
    const stretch = yield* itemCheck(heap, heap.top());
    heap.pop();
    if (stretch !== treeCheck(stretchDepth)) return wrong('stretch tree', stretch, stretchDepth);
    libc.puts(`stretch tree of depth ${stretchDepth}\t check: ${stretch}\n`);
    yield* bottomUpTree(heap, maxDepth);
    heap.setGlobal(0, heap.top());
    heap.pop();
    for (let d = MIN_DEPTH; d <= maxDepth; d += 2) {
      const iterations = 2 ** (maxDepth - d + MIN_DEPTH);
      let check = 0;
      for (let i = 0; i < iterations; i++) {
        yield* bottomUpTree(heap, d);
        check += yield* itemCheck(heap, heap.top());
        heap.pop();
        yield;
      }
      if (check !== iterations * treeCheck(d)) return wrong(`${iterations} trees of depth ${d}:`, check, d);
      libc.puts(`${iterations}\t trees of depth ${d}\t check: ${check}\n`);
    }
    const longLived = yield* itemCheck(heap, heap.getGlobal(0));
    if (longLived !== treeCheck(maxDepth)) return wrong('long lived tree', longLived, maxDepth);
    heap.setGlobal(0, 0);
    heap.destroy();
    libc.puts(`long lived tree of depth ${maxDepth}\t check: ${longLived}\n`);
    return 0;
  };
}

// ---- listchurn ----

/** Queue node: field 0 next; data: its sequence number (u32), then payload. */
const NODE_DATA_BYTES = 24;
/** The short-lived message each operation makes and drops. */
const MESSAGE_DATA_BYTES = 40;

/** Append a node numbered `seq` at the queue's tail (the queue header is global 0). */
function enqueue(heap: ManagedHeap, seq: number): void {
  const node = heap.alloc(1, NODE_DATA_BYTES, T_NODE);
  heap.store32(node, 0, seq);
  heap.store32(node, 4, seq ^ 0x5a5a5a5a);
  const queue = heap.getGlobal(0);
  const tail = heap.get(queue, 1);
  if (tail === 0) heap.set(queue, 0, node);
  else heap.set(tail, 0, node);
  heap.set(queue, 1, node);
  heap.pop();
}

/** Unlink the head node; its sequence number, or -1 when its payload is not what enqueue wrote. */
function dequeue(heap: ManagedHeap): number {
  const queue = heap.getGlobal(0);
  const head = heap.get(queue, 0);
  const seq = heap.load32(head, 0);
  if (heap.load32(head, 4) !== (seq ^ 0x5a5a5a5a) >>> 0) return -1;
  const next = heap.get(head, 0);
  heap.set(queue, 0, next);
  if (next === 0) heap.set(queue, 1, 0);
  return seq;
}

/** A message that lives for one operation: made, written, dropped. */
function churnMessage(heap: ManagedHeap, seq: number): void {
  const msg = heap.alloc(0, MESSAGE_DATA_BYTES, T_MESSAGE);
  heap.store32(msg, 0, seq);
  heap.pop();
}

/**
 * listchurn [N] [ROUNDS]: a FIFO queue of N nodes (default 1000) in global 0; each of ROUNDS
 * rounds (default 20) enqueues N new nodes and dequeues N old ones, one of each per step, with
 * a message made and dropped per step, so most objects die young and none lives for more than
 * 2N steps. Then it drains the queue. Exit 1 when a node comes out of order or damaged.
 */
export function listchurn(options: GcProgramOptions = {}): UserMain {
  return function* (ctx) {
    const libc = new Libc(ctx);
    const n = argInt(ctx, 1, { min: 1, max: 1 << 24, fallback: 1000 });
    const rounds = argInt(ctx, 2, { min: 0, max: 1 << 20, fallback: 20 });
    if (n === undefined || rounds === undefined) return complain(libc, 'usage: listchurn [N] [ROUNDS]');
    const heap = openHeap(libc, options, { globals: 1 });
    if (typeof heap === 'string') return complain(libc, `listchurn: ${heap}`);
    heap.alloc(2, 0, T_QUEUE);
    heap.setGlobal(0, heap.top());
    heap.pop();
    let enqueued = 0;
    let dequeued = 0;
    let sum = 0;
    const take = (): boolean => {
      const seq = dequeue(heap);
      if (seq !== dequeued) return false;
      dequeued++;
      sum += seq;
      return true;
    };
    for (let i = 0; i < n; i++) {
      enqueue(heap, enqueued++);
      yield;
    }
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < n; i++) {
        churnMessage(heap, enqueued);
        enqueue(heap, enqueued++);
        if (!take()) return misordered(libc, dequeued);
        yield;
      }
    }
    for (let i = 0; i < n; i++) {
      if (!take()) return misordered(libc, dequeued);
      yield;
    }
    heap.setGlobal(0, 0);
    heap.destroy();
    if (sum !== (enqueued * (enqueued - 1)) / 2) return misordered(libc, dequeued);
    libc.puts(`listchurn: ${n} nodes, ${rounds} rounds: ${dequeued} dequeued in order, sum ${sum}\n`);
    return 0;
  };
}

function misordered(libc: Libc, expected: number): number {
  libc.puts(`listchurn: node ${expected} did not come out in order (or its payload was damaged)\n`, 2);
  return 1;
}

// ---- gccache ----

/** Entry: fields [next, value]; data: key u32, version u32. Value: data key, version, payload. */
const ENTRY_DATA_BYTES = 8;
const VALUE_DATA_BYTES = 32;
const REQUEST_DATA_BYTES = 48;
const MAX_BUCKET_BITS = 14;

/** The cache: its table is global 0, of 2^bits buckets (1 <= bits <= 14). */
interface Cache {
  heap: ManagedHeap;
  bits: number;
}

/** Fibonacci hashing: the top `bits` bits of key * 2^32/phi. */
function bucketOf(cache: Cache, key: number): number {
  return Math.imul(key, 0x9e3779b1) >>> (32 - cache.bits);
}

/** The entry for `key`, or 0. */
function lookup(cache: Cache, key: number): number {
  const heap = cache.heap;
  let e = heap.get(heap.getGlobal(0), bucketOf(cache, key));
  while (e !== 0 && heap.load32(e, 0) !== key) e = heap.get(e, 0);
  return e;
}

/** A new value object of `key` and `version`, pushed on the shadow stack. */
function newValue(heap: ManagedHeap, key: number, version: number): number {
  const v = heap.alloc(0, VALUE_DATA_BYTES, T_VALUE);
  heap.store32(v, 0, key);
  heap.store32(v, 4, version);
  heap.store32(v, 8, (key * 31 + version) >>> 0);
  return v;
}

/**
 * Put a new entry (and value) for `key` at the head of its bucket, after unlinking the old
 * entry for `key` if there is one.
 */
function insertEntry(cache: Cache, key: number, version: number): void {
  const heap = cache.heap;
  const fresh = heap.alloc(2, ENTRY_DATA_BYTES, T_ENTRY);
  heap.store32(fresh, 0, key);
  heap.store32(fresh, 4, version);
  newValue(heap, key, version);
  heap.set(heap.top(1), 1, heap.top(0));
  unlinkEntry(cache, key);
  const table = heap.getGlobal(0);
  const b = bucketOf(cache, key);
  const entry = heap.top(1);
  heap.set(entry, 0, heap.get(table, b));
  heap.set(table, b, entry);
  heap.pop(2);
}

/** Take the entry for `key` out of its bucket's chain (nothing when there is none). */
function unlinkEntry(cache: Cache, key: number): void {
  const heap = cache.heap;
  const table = heap.getGlobal(0);
  const b = bucketOf(cache, key);
  let prev = 0;
  let e = heap.get(table, b);
  while (e !== 0 && heap.load32(e, 0) !== key) {
    prev = e;
    e = heap.get(e, 0);
  }
  if (e === 0) return;
  const next = heap.get(e, 0);
  if (prev === 0) heap.set(table, b, next);
  else heap.set(prev, 0, next);
}

/** Is the entry's value the one it says (same key and version, the payload word intact)? */
function entryIntact(heap: ManagedHeap, entry: number, key: number): boolean {
  const version = heap.load32(entry, 4);
  const v = heap.get(entry, 1);
  return (
    v !== 0 &&
    heap.load32(v, 0) === key &&
    heap.load32(v, 4) === version &&
    heap.load32(v, 8) === (key * 31 + version) >>> 0
  );
}

/**
 * gccache [ENTRIES] [OPS] [HOT]: a hash table of ENTRIES (default 2000) entries, each with a
 * value object, that lives for the whole run (the old generation); then OPS operations
 * (default 20000) on keys drawn from [0, HOT) (default ENTRIES) by a PRNG seeded with ctx.seed:
 * each makes a request object that dies with it and looks its key up; one in 8 replaces the
 * entry's value, one in 32 the whole entry (a young object stored into an old one: the write
 * barrier's case). The keys go in from the last to the first, so a bucket's chain starts with
 * its smallest keys: with HOT < ENTRIES the mutator touches the hot entries and never the
 * cold ones, which only a collection that traces the whole heap reads. Exit 1 when a lookup
 * misses or finds a damaged value.
 */
export function gccache(options: GcProgramOptions = {}): UserMain {
  return function* (ctx) {
    const libc = new Libc(ctx);
    const entries = argInt(ctx, 1, { min: 1, max: 1 << 24, fallback: 2000 });
    const ops = argInt(ctx, 2, { min: 0, max: 1 << 30, fallback: 20000 });
    const hot = argInt(ctx, 3, { min: 1, max: entries ?? 1, fallback: entries ?? 1 });
    if (entries === undefined || ops === undefined || hot === undefined)
      return complain(libc, 'usage: gccache [ENTRIES] [OPS] [HOT] (1 <= HOT <= ENTRIES)');
    const heap = openHeap(libc, options, { globals: 1 });
    if (typeof heap === 'string') return complain(libc, `gccache: ${heap}`);
    const bits = Math.min(MAX_BUCKET_BITS, Math.max(1, Math.ceil(Math.log2(entries / 2))));
    const cache: Cache = { heap, bits };
    heap.alloc(2 ** bits, 0, T_TABLE);
    heap.setGlobal(0, heap.top());
    heap.pop();
    for (let k = entries - 1; k >= 0; k--) {
      insertEntry(cache, k, 0);
      yield;
    }
    const rand = new Rand(ctx.seed ^ 0x9e3779b9);
    let values = 0;
    let replaced = 0;
    let sum = 0;
    for (let i = 0; i < ops; i++) {
      const key = rand.below(hot);
      const choice = rand.below(32);
      const request = heap.alloc(0, REQUEST_DATA_BYTES, T_MESSAGE);
      heap.store32(request, 0, key);
      const entry = lookup(cache, key);
      if (entry === 0 || !entryIntact(heap, entry, key)) return damaged(libc, key);
      const version = heap.load32(entry, 4);
      sum += version;
      if (choice === 0) {
        insertEntry(cache, key, version + 1);
        replaced++;
      } else if (choice <= 4) {
        newValue(heap, key, version + 1);
        const e = lookup(cache, key); // the allocation may have moved it
        heap.set(e, 1, heap.top());
        heap.store32(e, 4, version + 1);
        heap.pop();
        values++;
      }
      heap.pop(); // the request
      yield;
    }
    for (let k = 0; k < entries; k++) {
      const entry = lookup(cache, k);
      if (entry === 0 || !entryIntact(heap, entry, k)) return damaged(libc, k);
      if (k % 64 === 63) yield;
    }
    heap.setGlobal(0, 0);
    heap.destroy();
    libc.puts(
      `gccache: ${entries} entries, ${ops} ops: ${values} values and ${replaced} entries replaced, version sum ${sum}\n`,
    );
    return 0;
  };
}

function damaged(libc: Libc, key: number): number {
  libc.puts(`gccache: the entry for key ${key} is missing or its value is damaged\n`, 2);
  return 1;
}

// ---- cycleleak ----

/** Data bytes of each object in a cycle. */
const CYCLE_DATA_BYTES = 32;

/** Make a ring of `length` objects (1 field each, the last pointing at the first) and drop it. */
function dropRing(heap: ManagedHeap, length: number, stamp: number): void {
  const first = heap.alloc(1, CYCLE_DATA_BYTES, T_CYCLE);
  heap.store32(first, 0, stamp);
  heap.push(first); // stack: first, current
  for (let j = 1; j < length; j++) {
    const next = heap.alloc(1, CYCLE_DATA_BYTES, T_CYCLE); // stack: first, current, next
    heap.store32(next, 0, stamp + j);
    heap.set(heap.top(1), 0, next);
    heap.setSlot(heap.depth() - 2, next);
    heap.pop();
  }
  heap.set(heap.top(0), 0, heap.top(1));
  heap.pop(2);
}

/**
 * cycleleak [N]: makes and drops N cycles (default 2000): pairs (two objects pointing at each
 * other) and rings of 3 to 8 objects in turn. No root reaches them once dropped: a tracing
 * collector frees them, reference counting alone never does (refcount with VMLAB_GC_CYCLES=0:
 * the heap grows with every cycle), refcount's cycle detector does. Then a full collection;
 * the last line gives the live and heap bytes the collector reports.
 */
export function cycleleak(options: GcProgramOptions = {}): UserMain {
  return function* (ctx) {
    const libc = new Libc(ctx);
    const n = argInt(ctx, 1, { min: 0, max: 1 << 24, fallback: 2000 });
    if (n === undefined) return complain(libc, 'usage: cycleleak [N]');
    const heap = openHeap(libc, options, { globals: 0 });
    if (typeof heap === 'string') return complain(libc, `cycleleak: ${heap}`);
    let objects = 0;
    for (let i = 0; i < n; i++) {
      const length = i % 2 === 0 ? 2 : 3 + ((i >> 1) % 6);
      dropRing(heap, length, objects);
      objects += length;
      yield;
    }
    heap.collect('full');
    const { liveBytes, heapBytes, collector } = heap.report();
    heap.destroy();
    libc.puts(
      `cycleleak: ${n} cycles (${objects} objects) dropped under ${collector}: live ${liveBytes} bytes, heap ${heapBytes} bytes\n`,
    );
    return 0;
  };
}

/** The programs by name, as /bin registers them (each made with no options: the collector from VMLAB_GC). */
export const GC_PROGRAMS: Readonly<Record<string, (options?: GcProgramOptions) => UserMain>> = {
  binarytrees,
  listchurn,
  gccache,
  cycleleak,
};
