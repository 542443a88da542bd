/**
 * The file system calls: open, close, read, write, pread64, pwrite64, lseek, fstat, ftruncate,
 * fsync, fdatasync, unlink. Linux's arguments, error numbers and semantics; data moves through
 * the page cache one page at a time through a kernel bounce buffer, so a fault while copying
 * to or from user memory (which may reclaim) never sees a frame change under it. A read that
 * must wait for the disk makes the caller sleep at its next yield until the data is there.
 */
import { EBADF, EFAULT, EINVAL, EISDIR, ENOMEM, ESPIPE } from '../lib/errno.ts';
import type { PageCache } from '../mm/filemap.ts';
import type { FdTable } from './fdtable.ts';
import {
  canRead,
  canWrite,
  type FileSystem,
  type Inode,
  O_APPEND,
  O_CLOEXEC,
  type OpenFile,
  type ProcSource,
} from './vfs.ts';

export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;

/** Largest count one read or write moves (Linux's MAX_RW_COUNT). */
export const MAX_RW_COUNT = 0x7ffff000;

/** Size of struct stat in the x86-64 layout that fstat writes. */
export const STAT_BYTES = 144;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
/** procfs's device number (0:22, an anonymous device), as fstat reports it. */
const PROC_DEVICE = 22;

/** A stable number for a /proc path (its inode number in fstat). */
function hashPath(path: string): number {
  let h = 0;
  for (let i = 0; i < path.length; i++) h = (Math.imul(h, 31) + path.charCodeAt(i)) | 0;
  return h >>> 0;
}

export interface FileCallEnv {
  fs: FileSystem;
  cache: PageCache;
  fds: FdTable;
  pageBytes: number;
  /** Copy bytes to user memory: 0 or -EFAULT. */
  copyToUser(va: number, bytes: Uint8Array): number;
  /** Fill `dst` from user memory: 0 or -EFAULT. */
  copyFromUser(va: number, dst: Uint8Array): number;
  /** Frame contents (the page cache's pages). */
  frame(pfn: number): Uint8Array;
  frameForWrite(pfn: number): Uint8Array;
  /** The caller sleeps until emulated time `time` (at its next yield). */
  waitFor(time: number): void;
  /** Bytes for the process's stdout or stderr. */
  console(stream: 'stdout' | 'stderr', bytes: Uint8Array): void;
  /** A page-sized scratch buffer. */
  bounce: Uint8Array;
}

/** open(path, flags, mode): a descriptor or -errno. */
export function sysOpen(env: FileCallEnv, path: string, flags: number, mode: number): number {
  if (typeof path !== 'string') return -EFAULT;
  const file = env.fs.open(path, flags, mode);
  if (typeof file === 'number') return file;
  const fd = env.fds.install(file, { cloexec: (flags & O_CLOEXEC) !== 0 });
  if (fd < 0) env.fs.release(file);
  return fd;
}

/** close(fd). */
export function sysClose(env: FileCallEnv, fd: number): number {
  return env.fds.close(fd, env.fs);
}

function regularFile(env: FileCallEnv, fd: number, need: 'read' | 'write'): OpenFile | number {
  const f = env.fds.get(fd);
  if (f === undefined) return -EBADF;
  if (need === 'read' ? !canRead(f) : !canWrite(f)) return -EBADF;
  return f;
}

function validCount(length: number): boolean {
  return Number.isSafeInteger(length) && length >= 0;
}

/** read(fd, buf, count) / pread64 when `offset` is given: bytes read, or -errno. */
export function sysRead(env: FileCallEnv, fd: number, va: number, length: number, offset?: number): number {
  const f = regularFile(env, fd, 'read');
  if (typeof f === 'number') return f;
  if (!validCount(length)) return -EINVAL;
  if (f.kind === 'console') return offset === undefined ? 0 : -ESPIPE; // stdin is empty: end of file
  if (offset !== undefined && (!Number.isSafeInteger(offset) || offset < 0)) return -EINVAL;
  if (f.kind === 'proc') {
    const pos = offset ?? f.pos;
    const n = readProc(env, f.source, pos, va, Math.min(length, MAX_RW_COUNT));
    if (n > 0 && offset === undefined) f.pos = pos + n;
    return n;
  }
  if (f.inode.isDirectory) return -EISDIR;
  const pos = offset ?? f.pos;
  const n = readFile(env, f.inode, pos, va, Math.min(length, MAX_RW_COUNT));
  if (n > 0 && offset === undefined) f.pos = pos + n;
  return n;
}

/** read() of a /proc file: its bytes from `pos`, through the bounce buffer a page at a time. */
function readProc(env: FileCallEnv, source: ProcSource, pos: number, va: number, length: number): number {
  const end = Math.min(pos + length, source.sizeBytes);
  let done = 0;
  while (pos + done < end) {
    const chunk = source.read(pos + done, Math.min(env.pageBytes, end - pos - done));
    if (chunk.length === 0) break;
    if (env.copyToUser(va + done, chunk) < 0) return done > 0 ? done : -EFAULT;
    done += chunk.length;
  }
  return done;
}

function readFile(env: FileCallEnv, inode: Inode, pos: number, va: number, length: number): number {
  const page = env.pageBytes;
  const end = Math.min(pos + length, inode.sizeBytes);
  let done = 0;
  while (pos + done < end) {
    const at = pos + done;
    const index = Math.floor(at / page);
    const off = at % page;
    const chunk = Math.min(page - off, end - at);
    const pfn = env.cache.getPage(inode, index, 'sequential');
    if (pfn < 0) return done > 0 ? done : -ENOMEM;
    env.waitFor(env.cache.lastReadyAt);
    const part = env.bounce.subarray(0, chunk);
    part.set(env.frame(pfn).subarray(off, off + chunk));
    if (env.copyToUser(va + done, part) < 0) return done > 0 ? done : -EFAULT;
    done += chunk;
  }
  return done;
}

/** write(fd, buf, count) / pwrite64 when `offset` is given: bytes written, or -errno. */
export function sysWrite(env: FileCallEnv, fd: number, va: number, length: number, offset?: number): number {
  const f = regularFile(env, fd, 'write');
  if (typeof f === 'number') return f;
  if (!validCount(length)) return -EINVAL;
  const count = Math.min(length, MAX_RW_COUNT);
  if (f.kind === 'console') {
    if (offset !== undefined) return -ESPIPE;
    return writeConsole(env, f.stream === 'stderr' ? 'stderr' : 'stdout', va, count);
  }
  if (f.kind === 'proc') return -EBADF; // never open for writing (regularFile refused it)
  if (offset !== undefined && (!Number.isSafeInteger(offset) || offset < 0)) return -EINVAL;
  const append = offset === undefined && (f.flags & O_APPEND) !== 0;
  const pos = append ? f.inode.sizeBytes : (offset ?? f.pos);
  const n = writeFile(env, f.inode, pos, va, count);
  if (n > 0 && offset === undefined) f.pos = pos + n;
  return n;
}

function writeConsole(env: FileCallEnv, stream: 'stdout' | 'stderr', va: number, count: number): number {
  let done = 0;
  while (done < count) {
    const chunk = Math.min(env.pageBytes, count - done);
    const part = env.bounce.subarray(0, chunk);
    if (env.copyFromUser(va + done, part) < 0) return done > 0 ? done : -EFAULT;
    env.console(stream, part);
    done += chunk;
  }
  return done;
}

function writeFile(env: FileCallEnv, inode: Inode, pos: number, va: number, count: number): number {
  const page = env.pageBytes;
  let done = 0;
  while (done < count) {
    const at = pos + done;
    const index = Math.floor(at / page);
    const off = at % page;
    const chunk = Math.min(page - off, count - done);
    const part = env.bounce.subarray(0, chunk);
    if (env.copyFromUser(va + done, part) < 0) return done > 0 ? done : -EFAULT;
    const covers = chunk === page || (off === 0 && at + chunk >= inode.sizeBytes) ? 'whole' : 'part';
    const pfn = env.cache.getPageForWrite(inode, index, covers);
    if (pfn < 0) return done > 0 ? done : -ENOMEM;
    env.waitFor(env.cache.lastReadyAt);
    env.frameForWrite(pfn).set(part, off);
    env.cache.markDirty(pfn);
    if (at + chunk > inode.sizeBytes) inode.sizeBytes = at + chunk;
    done += chunk;
  }
  return done;
}

/** lseek(fd, offset, whence): the new position, or -errno. */
export function sysLseek(env: FileCallEnv, fd: number, offset: number, whence: number): number {
  const f = env.fds.get(fd);
  if (f === undefined) return -EBADF;
  if (f.kind === 'console') return -ESPIPE;
  if (!Number.isSafeInteger(offset)) return -EINVAL;
  let base: number;
  if (whence === SEEK_SET) base = 0;
  else if (whence === SEEK_CUR) base = f.pos;
  else if (whence === SEEK_END) base = f.kind === 'proc' ? f.source.sizeBytes : f.inode.sizeBytes;
  else return -EINVAL;
  const pos = base + offset;
  if (pos < 0) return -EINVAL;
  f.pos = pos;
  return pos;
}

/**
 * fstat(fd, statbuf): writes a struct stat in the x86-64 layout (st_dev, st_ino, st_nlink,
 * st_mode, st_uid, st_gid, st_rdev, st_size, st_blksize, st_blocks, times) at `va`.
 */
export function sysFstat(env: FileCallEnv, fd: number, va: number): number {
  const f = env.fds.get(fd);
  if (f === undefined) return -EBADF;
  const buf = new Uint8Array(STAT_BYTES);
  const v = new DataView(buf.buffer);
  const put64 = (at: number, n: number): void => {
    v.setUint32(at, n >>> 0, true);
    v.setUint32(at + 4, Math.floor(n / 2 ** 32), true);
  };
  if (f.kind === 'console') {
    put64(0, 0x16); // devtmpfs-like device of a tty
    put64(16, 1);
    v.setUint32(24, 0o020620, true); // S_IFCHR | rw--w----
    put64(40, (136 << 8) | 0); // rdev of /dev/pts/0
    put64(56, 1024);
  } else if (f.kind === 'proc') {
    put64(0, PROC_DEVICE); // procfs: device 0:22, size 0, r--r--r--, as Linux reports /proc files
    put64(8, 0x1000 + (hashPath(f.path) & 0xfffff));
    put64(16, 1);
    v.setUint32(24, S_IFREG | 0o444, true);
    put64(56, 1024);
  } else {
    const ino = f.inode;
    const dev = ((ino.device >>> 20) << 8) | (ino.device & 0xff);
    put64(0, dev);
    put64(8, ino.ino);
    put64(16, 1);
    v.setUint32(24, (ino.isDirectory ? S_IFDIR : S_IFREG) | ino.mode, true);
    put64(48, ino.sizeBytes);
    put64(56, env.pageBytes);
    put64(64, Math.ceil(ino.sizeBytes / 4096) * 8);
  }
  return env.copyToUser(va, buf);
}

/** ftruncate(fd, length). */
export function sysFtruncate(env: FileCallEnv, fd: number, length: number): number {
  const f = env.fds.get(fd);
  if (f === undefined) return -EBADF;
  if (!Number.isSafeInteger(length) || length < 0) return -EINVAL;
  if (f.kind !== 'regular' || f.inode.isDirectory || !canWrite(f)) return -EINVAL;
  env.fs.truncate(f.inode, length);
  return 0;
}

/** fsync(fd) / fdatasync(fd): write back the file's dirty pages and wait for the disk. */
export function sysFsync(env: FileCallEnv, fd: number): number {
  const f = env.fds.get(fd);
  if (f === undefined) return -EBADF;
  if (f.kind !== 'regular') return -EINVAL;
  env.waitFor(env.cache.syncRange(f.inode, 0, Number.POSITIVE_INFINITY));
  return 0;
}

/** unlink(path). */
export function sysUnlink(env: FileCallEnv, path: string): number {
  if (typeof path !== 'string') return -EFAULT;
  return env.fs.unlink(path);
}

export { O_APPEND };
