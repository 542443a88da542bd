/**
 * A collector for tests of the tools around managed heaps (programs, gc-replay): it allocates
 * and never frees, so a test can run the programs without depending on a real collector.
 */

import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../kernel/proc/uapi.ts';
import {
  type CollectionKind,
  type Collector,
  type CollectorEnv,
  GcAbort,
} from '../../userland/gc/collector.ts';
import { objectBytes, sizeOf, storeField, writeHeader } from '../../userland/gc/object.ts';

/**
 * A test-only collector: bump allocation in 1 MiB chunks that it maps as it needs them, and
 * never frees (a "collection" walks every object's header, so it takes emulated time). Its
 * chunks form a list in emulated memory, each headed by
 *   [0] next chunk (0: the last)   [8] chunk bytes   [16] end of its objects
 * and the current chunk's end is the bump pointer.
 */
export class BumpCollector implements Collector {
  readonly name = 'bump';
  readonly moving = false;
  private readonly env: CollectorEnv;
  private first = 0;
  private chunk = 0;
  private bump = 0;
  private limit = 0;

  constructor(env: CollectorEnv) {
    this.env = env;
  }

  allocate(nptrs: number, dataBytes: number, type: number): number {
    const size = objectBytes(nptrs, dataBytes);
    if (this.bump + size > this.limit && !this.newChunk(size)) return 0;
    const obj = this.bump;
    this.bump += size;
    writeHeader(this.env.cpu, obj, nptrs, type, dataBytes);
    const r = this.env.stats.report;
    r.objectsAllocated++;
    r.bytesAllocated += size;
    r.liveBytes += size;
    return obj;
  }

  writeField(obj: number, i: number, ref: number): void {
    storeField(this.env.cpu, obj, i, ref);
  }

  collect(kind: CollectionKind): void {
    const stats = this.env.stats;
    stats.begin(kind);
    let bytes = 0;
    this.forEachObject((obj) => {
      bytes += sizeOf(this.env.cpu, obj);
    });
    stats.report.bytesMarked += bytes;
    stats.end();
  }

  isObject(addr: number): boolean {
    let found = false;
    this.forEachObject((obj) => {
      if (obj === addr) found = true;
    });
    return found;
  }

  forEachObject(fn: (obj: number) => void): void {
    const cpu = this.env.cpu;
    for (let c = this.first; c !== 0; c = cpu.load64(c)) {
      const end = c === this.chunk ? this.bump : cpu.load64(c + 16);
      for (let obj = c + CHUNK_HEADER; obj < end; obj += sizeOf(cpu, obj)) fn(obj);
    }
  }

  destroy(): void {
    const cpu = this.env.cpu;
    for (let c = this.first; c !== 0; ) {
      const next = cpu.load64(c);
      this.env.libc.munmap(c, cpu.load64(c + 8));
      c = next;
    }
    this.first = this.chunk = this.bump = this.limit = 0;
  }

  checkInvariants(): void {
    const cpu = this.env.cpu;
    for (let c = this.first; c !== 0; c = cpu.load64(c)) {
      const end = c === this.chunk ? this.bump : cpu.load64(c + 16);
      let obj = c + CHUNK_HEADER;
      while (obj < end) obj += sizeOf(cpu, obj);
      if (obj !== end || end > c + cpu.load64(c + 8))
        throw new GcAbort(
          `bump: chunk 0x${c.toString(16)} ends its objects at 0x${obj.toString(16)}, not 0x${end.toString(16)}`,
        );
    }
  }

  /** Map a chunk for at least `size` object bytes and make it current; false when refused. */
  private newChunk(size: number): boolean {
    const bytes = Math.max(CHUNK_BYTES, Math.ceil((size + CHUNK_HEADER) / 4096) * 4096);
    const c = this.env.libc.mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c === -1) return false;
    const cpu = this.env.cpu;
    cpu.store64(c + 8, bytes);
    if (this.chunk === 0) this.first = c;
    else {
      cpu.store64(this.chunk + 16, this.bump);
      cpu.store64(this.chunk, c);
    }
    this.chunk = c;
    this.bump = c + CHUNK_HEADER;
    this.limit = c + bytes;
    this.env.stats.report.heapBytes += bytes;
    return true;
  }
}

const CHUNK_BYTES = 1 << 20;
const CHUNK_HEADER = 32;
