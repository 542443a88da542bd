/**
 * A process's file-descriptor table (Linux's files_struct): descriptor numbers to open file
 * descriptions. fork copies the table, and the copies share descriptions (and so their file
 * positions), as in Linux; exit closes every descriptor.
 *
 *   every non-null slot holds one reference to its description
 *   the table owns one files_cache object while it lives
 */
import { EBADF, EMFILE } from '../lib/errno.ts';
import { panic } from '../lib/panic.ts';
import type { KmemCache } from '../mm/slab.ts';
import type { FileSystem, OpenFile } from './vfs.ts';

/** RLIMIT_NOFILE's usual soft limit. */
export const MAX_FDS = 1024;

export class FdTable {
  private readonly slots: Array<OpenFile | null> = [];
  private readonly cache: KmemCache;
  private kobj: number;
  /** Descriptors marked close-on-exec. */
  private readonly cloexec = new Set<number>();

  private constructor(cache: KmemCache, kobj: number) {
    this.cache = cache;
    this.kobj = kobj;
  }

  /** An empty table, or null when no files_cache object can be had. */
  static create(cache: KmemCache): FdTable | null {
    const kobj = cache.alloc({ contents: 'zeroed' });
    return kobj < 0 ? null : new FdTable(cache, kobj);
  }

  /** The lowest free descriptor now holds `file` (the table takes the caller's reference). */
  install(file: OpenFile, options: { cloexec?: boolean } = {}): number {
    let fd = this.slots.indexOf(null);
    if (fd < 0) fd = this.slots.length;
    if (fd >= MAX_FDS) return -EMFILE;
    this.slots[fd] = file;
    if (options.cloexec === true) this.cloexec.add(fd);
    return fd;
  }

  /** The description behind `fd`, or undefined for a bad descriptor. */
  get(fd: number): OpenFile | undefined {
    if (!Number.isInteger(fd) || fd < 0 || fd >= this.slots.length) return undefined;
    return this.slots[fd] ?? undefined;
  }

  /** close(fd): 0 or -EBADF. */
  close(fd: number, fs: FileSystem): number {
    const file = this.get(fd);
    if (file === undefined) return -EBADF;
    this.slots[fd] = null;
    this.cloexec.delete(fd);
    fs.release(file);
    return 0;
  }

  /** A copy for a forked child (descriptions shared), or null when no object can be had. */
  fork(): FdTable | null {
    const copy = FdTable.create(this.cache);
    if (copy === null) return null;
    for (const f of this.slots) {
      if (f !== null) f.refs++;
      copy.slots.push(f);
    }
    for (const fd of this.cloexec) copy.cloexec.add(fd);
    return copy;
  }

  /** execve: close the close-on-exec descriptors. */
  closeOnExec(fs: FileSystem): void {
    for (const fd of [...this.cloexec].sort((a, b) => a - b)) this.close(fd, fs);
  }

  /** Close everything and free the table (exit). */
  destroy(fs: FileSystem): void {
    if (this.kobj < 0) panic('fdTableDestroy: table already destroyed');
    for (let fd = 0; fd < this.slots.length; fd++) if (this.slots[fd] !== null) this.close(fd, fs);
    this.cache.free(this.kobj);
    this.kobj = -1;
  }

  /** Open descriptors, lowest first (for /proc/PID/fd-like listings and tests). */
  openFds(): number[] {
    const out: number[] = [];
    for (let fd = 0; fd < this.slots.length; fd++) if (this.slots[fd] !== null) out.push(fd);
    return out;
  }
}
