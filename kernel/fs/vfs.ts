/**
 * The file system processes see: a namespace rooted at a host directory (the sandbox), its
 * inodes and the open file descriptions that refer to them.
 *
 * Sandbox: every path is resolved component by component under the root, as after chroot:
 * an absolute path starts at the root, `..` never climbs above it, and a symbolic link is
 * followed by resolving its target the same way (an absolute target starts at the sandbox
 * root). Host paths are only ever built as root + resolved components, so nothing a workload
 * names can reach outside the root.
 *
 * Inodes: one per host file, numbered in the order the kernel first meets them (so runs are
 * repeatable on any host). An inode holds the file's size as the kernel sees it (i_size: writes
 * not yet written back count), its page cache (`pages`), and a host descriptor for its data.
 *
 *   inode alive  <=>  opens > 0 || mapUsers > 0 || pages.size > 0 || it is the root
 *   every live inode owns one inode_cache object and one dentry object
 */
import {
  closeSync,
  constants,
  existsSync,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readlinkSync,
  readSync,
  rmSync,
  type Stats,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  EACCES,
  EEXIST,
  EINVAL,
  EISDIR,
  ELOOP,
  ENAMETOOLONG,
  ENOENT,
  ENOMEM,
  ENOTDIR,
} from '../lib/errno.ts';
import { panic } from '../lib/panic.ts';
import type { KmemCache } from '../mm/slab.ts';
import type { MappedFile } from '../mm/vma.ts';

// open(2) flags (x86-64 and generic Linux values).
export const O_ACCMODE = 0o3;
export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_DIRECTORY = 0o200000;
export const O_CLOEXEC = 0o2000000;
const O_KNOWN = O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_DIRECTORY | O_CLOEXEC | 0o100000; // O_LARGEFILE

/** The device number files in the sandbox report (fd:01, as a device-mapper volume). */
export const SANDBOX_DEVICE = (0xfd << 20) | 0x01;

const PATH_MAX = 4096;
const NAME_MAX = 255;
const MAX_SYMLINKS = 40;

/** An inode: one file (or directory) of the sandbox. */
export class Inode implements MappedFile {
  readonly ino: number;
  readonly device = SANDBOX_DEVICE;
  /** Path inside the sandbox where the kernel first met it (maps shows this). */
  path: string;
  readonly hostPath: string;
  readonly isDirectory: boolean;
  /** i_size. */
  sizeBytes: number;
  /** Permission bits (st_mode & 0o7777). */
  readonly mode: number;
  readonly pages = new Map<number, number>();
  mapUsers = 0;
  /** Open file descriptions referring to it. */
  opens = 0;
  /** Gone from the namespace (unlink); its data lives until the last user lets go. */
  unlinked = false;
  /** Readahead state: the last page index read and the current window in pages. */
  raPrevIndex = -2;
  raWindowPages = 0;
  /** Bytes the host file holds (what has been written back, or was there at first sight). */
  hostSizeBytes: number;
  readonly kobj: number;
  readonly dentry: number;
  /** The host file's identity ("dev:ino"), the file system's key for this inode. */
  readonly hostKey: string;
  private hostFd = -1;
  private hostWritable = false;

  constructor(fields: {
    ino: number;
    path: string;
    hostPath: string;
    stats: Stats;
    kobj: number;
    dentry: number;
  }) {
    this.ino = fields.ino;
    this.path = fields.path;
    this.hostPath = fields.hostPath;
    this.isDirectory = fields.stats.isDirectory();
    this.sizeBytes = this.isDirectory ? 0 : fields.stats.size;
    this.hostSizeBytes = this.sizeBytes;
    this.mode = fields.stats.mode & 0o7777;
    this.kobj = fields.kobj;
    this.dentry = fields.dentry;
    this.hostKey = hostKey(fields.stats);
  }

  /** Read host bytes at `pos` into `dst` (short at the host file's end; the rest is left as is). */
  readHost(pos: number, dst: Uint8Array): number {
    const fd = this.host('read');
    let done = 0;
    while (done < dst.length) {
      const n = readSync(fd, dst, done, dst.length - done, pos + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  /** Write `src` to the host file at `pos`. */
  writeHost(pos: number, src: Uint8Array): void {
    const fd = this.host('write');
    let done = 0;
    while (done < src.length) done += writeSync(fd, src, done, src.length - done, pos + done);
    this.hostSizeBytes = Math.max(this.hostSizeBytes, pos + src.length);
  }

  /** Make the host file exactly `bytes` long (truncate, or the size after writeback). */
  truncateHost(bytes: number): void {
    ftruncateSync(this.host('write'), bytes);
    this.hostSizeBytes = bytes;
  }

  /**
   * Open the host file now (at the first open of a regular file), so that its data stays
   * reachable after an unlink, as an open file's does.
   */
  openHost(): void {
    if (!this.isDirectory) this.host('read');
  }

  closeHost(): void {
    if (this.hostFd >= 0) closeSync(this.hostFd);
    this.hostFd = -1;
  }

  private host(need: 'read' | 'write'): number {
    if (this.hostFd >= 0 && (need === 'read' || this.hostWritable)) return this.hostFd;
    if (this.hostFd >= 0) panic(`inodeWrite: host file ${this.hostPath} is read-only`);
    try {
      this.hostFd = openSync(this.hostPath, constants.O_RDWR);
      this.hostWritable = true;
    } catch {
      this.hostFd = openSync(this.hostPath, constants.O_RDONLY);
      this.hostWritable = false;
      if (need === 'write') panic(`inodeWrite: host file ${this.hostPath} is read-only`);
    }
    return this.hostFd;
  }
}

/**
 * A /proc file as an open description sees it: `read` gives its bytes at a position. Text files
 * are a snapshot taken at open (as a seq_file's first read is); pagemap is rendered for the
 * range read. `sizeBytes` is what read() can return (pagemap: the whole virtual range).
 */
export interface ProcSource {
  read(pos: number, length: number): Uint8Array;
  sizeBytes: number;
}

/** An open file description (struct file): the inode, the access mode, the position. */
export type OpenFile =
  | { kind: 'console'; stream: 'stdin' | 'stdout' | 'stderr'; refs: number; kobj: number }
  | { kind: 'proc'; path: string; source: ProcSource; pos: number; refs: number; kobj: number }
  | {
      kind: 'regular';
      inode: Inode;
      /** O_ACCMODE and O_APPEND bits. */
      flags: number;
      pos: number;
      refs: number;
      kobj: number;
    };

export function canRead(f: OpenFile): boolean {
  if (f.kind === 'console') return f.stream === 'stdin';
  if (f.kind === 'proc') return true;
  return (f.flags & O_ACCMODE) !== O_WRONLY;
}

export function canWrite(f: OpenFile): boolean {
  if (f.kind === 'console') return f.stream !== 'stdin';
  if (f.kind === 'proc') return false;
  return (f.flags & O_ACCMODE) !== O_RDONLY;
}

/** What the file system needs from the kernel: its slab caches, and the page cache's truncate. */
export interface VfsDeps {
  caches: { inode: KmemCache; dentry: KmemCache; file: KmemCache };
  /** Drop cached pages of `inode` from page index `fromIndex` on (unmapping them). */
  truncatePages(inode: Inode, fromIndex: number): void;
}

/** Result of resolving a path: the host path and whether something is there. */
interface Resolved {
  hostPath: string;
  kernelPath: string;
  stats: Stats | null;
}

export class FileSystem {
  private rootPath: string | null;
  private readonly makeRoot: () => string;
  private readonly deps: VfsDeps;
  /** Inodes by host identity ("dev:ino" of the host file). */
  private readonly byHost = new Map<string, Inode>();
  private nextIno = 2;
  /** Counters: open calls, files created, unlinks. */
  opens = 0;

  /** `root` is the sandbox directory, or a function making one when first needed (a scratch root). */
  constructor(root: string | (() => string), deps: VfsDeps) {
    this.rootPath = typeof root === 'string' ? root : null;
    this.makeRoot = typeof root === 'string' ? () => root : root;
    this.deps = deps;
  }

  /** The host directory the sandbox is rooted at (created when first needed). */
  get root(): string {
    if (this.rootPath === null || !this.rootMade) {
      this.rootPath ??= this.makeRoot();
      mkdirSync(this.rootPath, { recursive: true });
      this.rootMade = true;
    }
    return this.rootPath;
  }
  private rootMade = false;

  /** Has the root been made (or given)? */
  get hasRoot(): boolean {
    return this.rootPath !== null;
  }

  /** Live inodes in the order the kernel met them. */
  inodes(): Inode[] {
    return [...this.byHost.values()].sort((a, b) => a.ino - b.ino);
  }

  /**
   * Resolve `path` inside the sandbox. Returns the host path and its stats (null when the last
   * component does not exist but its directory does), or -errno.
   */
  resolve(path: string, options: { follow: boolean } = { follow: true }): Resolved | number {
    if (path.length === 0) return -ENOENT;
    if (path.length >= PATH_MAX) return -ENAMETOOLONG;
    const parts: string[] = [];
    const todo = path.split('/').reverse();
    let links = 0;
    let stats: Stats | null = null;
    while (todo.length > 0) {
      const name = todo.pop()!;
      if (name === '' || name === '.') continue;
      if (name.length > NAME_MAX) return -ENAMETOOLONG;
      if (name === '..') {
        parts.pop();
        stats = null;
        continue;
      }
      parts.push(name);
      const host = join(this.root, ...parts);
      stats = lstatOrNull(host);
      const last = todo.every((n) => n === '' || n === '.');
      if (stats === null) {
        if (last) break;
        return -ENOENT;
      }
      if (stats.isSymbolicLink() && (!last || options.follow)) {
        if (++links > MAX_SYMLINKS) return -ELOOP;
        const target = readlinkSync(host);
        parts.pop();
        if (target.startsWith('/')) parts.length = 0;
        todo.push(...target.split('/').reverse());
        stats = null;
        continue;
      }
      if (!last && !stats.isDirectory()) return -ENOTDIR;
    }
    if (parts.length === 0 || stats === null) {
      stats = parts.length === 0 ? lstatOrNull(this.root) : stats;
    }
    return { hostPath: join(this.root, ...parts), kernelPath: `/${parts.join('/')}`, stats };
  }

  /**
   * open(path, flags, mode): a new open file description, or -errno (ENOENT, EEXIST, EISDIR,
   * EACCES, ENOTDIR, ELOOP, ENAMETOOLONG, EINVAL, ENOMEM when no filp object can be had).
   */
  open(path: string, flags: number, mode: number): OpenFile | number {
    if ((flags & ~O_KNOWN) !== 0 || (flags & O_ACCMODE) === O_ACCMODE) return -EINVAL;
    const proc = procPath(path);
    if (proc !== null) return this.openProc(proc, flags);
    let r = this.resolve(path);
    if (typeof r === 'number') return r;
    if (r.stats === null) {
      if ((flags & O_CREAT) === 0) return -ENOENT;
      const created = this.createHostFile(r.hostPath, mode);
      if (created < 0) return created;
      r = this.resolve(path);
      if (typeof r === 'number') return r;
      if (r.stats === null) return -ENOENT;
    } else if ((flags & (O_CREAT | O_EXCL)) === (O_CREAT | O_EXCL)) {
      return -EEXIST;
    }
    const accmode = flags & O_ACCMODE;
    if (r.stats.isDirectory() && accmode !== O_RDONLY) return -EISDIR;
    if ((flags & O_DIRECTORY) !== 0 && !r.stats.isDirectory()) return -ENOTDIR;
    if (!r.stats.isDirectory() && !r.stats.isFile()) return -EACCES; // devices, sockets, fifos
    if (!hostAllows(r.stats, accmode)) return -EACCES;
    const inode = this.inodeFor(r);
    if (typeof inode === 'number') return inode;
    const kobj = this.deps.caches.file.alloc({ contents: 'zeroed' });
    if (kobj < 0) {
      this.maybeFree(inode);
      return -ENOMEM;
    }
    inode.opens++;
    this.opens++;
    if ((flags & O_TRUNC) !== 0 && accmode !== O_RDONLY && !inode.isDirectory) this.truncate(inode, 0);
    return { kind: 'regular', inode, flags: flags & (O_ACCMODE | O_APPEND), pos: 0, refs: 1, kobj };
  }

  /**
   * The /proc files (set by the machine builder): the source of `path` (e.g. /proc/meminfo,
   * /proc/self/maps) for the calling process, or undefined when there is no such file.
   */
  procfs: ((path: string) => ProcSource | undefined) | null = null;

  /** open() of a /proc path: read-only, as procfs files are (EACCES for writing). */
  private openProc(path: string, flags: number): OpenFile | number {
    if ((flags & O_ACCMODE) !== O_RDONLY) return -EACCES;
    if ((flags & O_DIRECTORY) !== 0) return -ENOTDIR;
    const source = this.procfs?.(path);
    if (source === undefined) return -ENOENT;
    const kobj = this.deps.caches.file.alloc({ contents: 'zeroed' });
    if (kobj < 0) return -ENOMEM;
    this.opens++;
    return { kind: 'proc', path, source, pos: 0, refs: 1, kobj };
  }

  /** A console description (stdin, stdout or stderr); null when no filp object can be had. */
  openConsole(stream: 'stdin' | 'stdout' | 'stderr'): OpenFile | null {
    const kobj = this.deps.caches.file.alloc({ contents: 'zeroed' });
    return kobj < 0 ? null : { kind: 'console', stream, refs: 1, kobj };
  }

  /** Drop one reference to a description (close, exit); the last one frees it. */
  release(f: OpenFile): void {
    if (f.refs <= 0) panic('fput: description already released');
    if (--f.refs > 0) return;
    this.deps.caches.file.free(f.kobj);
    if (f.kind === 'regular') {
      f.inode.opens--;
      this.maybeFree(f.inode);
    }
  }

  /** unlink(path): 0 or -errno (ENOENT, EISDIR for a directory, EACCES). */
  unlink(path: string): number {
    const r = this.resolve(path, { follow: false });
    if (typeof r === 'number') return r;
    if (r.stats === null) return -ENOENT;
    if (r.stats.isDirectory()) return -EISDIR;
    if (r.kernelPath === '/') return -EISDIR;
    const inode = this.byHost.get(hostKey(r.stats));
    try {
      unlinkSync(r.hostPath);
    } catch {
      return -EACCES;
    }
    if (inode !== undefined) {
      inode.unlinked = true;
      this.maybeFree(inode);
    }
    return 0;
  }

  /**
   * Set the file's size (ftruncate, O_TRUNC): pages wholly past the new end leave the cache
   * (and every mapping), the tail of a partial last page is zeroed by the page cache, and the
   * host file follows at once.
   */
  truncate(inode: Inode, bytes: number): void {
    inode.sizeBytes = bytes;
    this.deps.truncatePages(inode, bytes);
    inode.truncateHost(bytes);
  }

  /** Free an inode nobody uses any more (an unlinked one loses its cached pages first). */
  maybeFree(inode: Inode): void {
    if (inode.opens > 0 || inode.mapUsers > 0) return;
    if (inode.unlinked && inode.pages.size > 0) this.deps.truncatePages(inode, 0);
    if (inode.pages.size > 0) return;
    this.forget(inode);
  }

  /** Host folder of program image files (made when first needed, removed at shutdown). */
  private imageDir: string | null = null;

  /**
   * The inode of the program image file that execve maps for `path`, writing the file from
   * `bytes()` the first time (read-only, as an installed program is). Image files live outside
   * the sandbox's namespace, so open() cannot reach or change them; maps names them `path`.
   * -ENOMEM when no inode object can be had.
   */
  programImage(path: string, bytes: () => Uint8Array): Inode | number {
    this.imageDir ??= mkdtempSync(join(tmpdir(), 'vmlab-images-'));
    const hostPath = join(this.imageDir, encodeURIComponent(path));
    if (!existsSync(hostPath)) writeFileSync(hostPath, bytes(), { mode: 0o555 });
    return this.inodeFor({ hostPath, kernelPath: path, stats: lstatSync(hostPath) });
  }

  /** Close every host descriptor and remove the image folder (shutdown). */
  shutdown(): void {
    for (const inode of this.byHost.values()) inode.closeHost();
    if (this.imageDir !== null) rmSync(this.imageDir, { recursive: true, force: true });
    this.imageDir = null;
  }

  /** Check the inode table: live inodes are used, own their objects, and their pages exist. */
  checkInvariants(): void {
    const seen = new Set<number>();
    for (const inode of this.byHost.values()) {
      if (seen.has(inode.ino)) panic(`vfsCheck: inode number ${inode.ino} used twice`);
      seen.add(inode.ino);
      if (inode.opens < 0 || inode.mapUsers < 0)
        panic(`vfsCheck: inode ${inode.ino} has ${inode.opens} opens and ${inode.mapUsers} maps`);
      if (inode.opens === 0 && inode.mapUsers === 0 && inode.pages.size === 0)
        panic(`vfsCheck: inode ${inode.ino} (${inode.path}) is unused but alive`);
    }
  }

  private inodeFor(r: Resolved): Inode | number {
    const stats = r.stats!;
    const key = hostKey(stats);
    const known = this.byHost.get(key);
    if (known !== undefined) return known;
    const kobj = this.deps.caches.inode.alloc({ contents: 'zeroed' });
    if (kobj < 0) return -ENOMEM;
    const dentry = this.deps.caches.dentry.alloc({ contents: 'zeroed' });
    if (dentry < 0) {
      this.deps.caches.inode.free(kobj);
      return -ENOMEM;
    }
    const inode = new Inode({
      ino: this.nextIno++,
      path: r.kernelPath,
      hostPath: r.hostPath, // resolve() followed every link: its stats are the file's own
      stats,
      kobj,
      dentry,
    });
    inode.openHost();
    this.byHost.set(inode.hostKey, inode);
    return inode;
  }

  private forget(inode: Inode): void {
    if (this.byHost.get(inode.hostKey) !== inode) return;
    this.byHost.delete(inode.hostKey);
    inode.closeHost();
    this.deps.caches.inode.free(inode.kobj);
    this.deps.caches.dentry.free(inode.dentry);
  }

  private createHostFile(hostPath: string, mode: number): number {
    try {
      closeSync(openSync(hostPath, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, mode & 0o777));
      return 0;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return -ENOENT;
      if (code === 'EEXIST') return -EEXIST;
      if (code === 'ENOTDIR') return -ENOTDIR;
      return -EACCES;
    }
  }
}

/**
 * The /proc path a name refers to, or null: /proc is mounted at the root of the namespace (it
 * hides a proc folder of the sandbox), after `.` and `..` are taken out as the walk does.
 */
function procPath(path: string): string | null {
  const parts: string[] = [];
  for (const name of path.split('/')) {
    if (name === '' || name === '.') continue;
    if (name === '..') parts.pop();
    else parts.push(name);
  }
  return parts[0] === 'proc' && parts.length > 1 ? `/${parts.join('/')}` : null;
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

function hostKey(stats: Stats): string {
  return `${stats.dev}:${stats.ino}`;
}

/** May the owner open a file of these permission bits for `accmode`? (vmlab runs as its owner.) */
function hostAllows(stats: Stats, accmode: number): boolean {
  if (stats.isDirectory()) return true;
  const wantRead = accmode !== O_WRONLY;
  const wantWrite = accmode !== O_RDONLY;
  if (wantRead && (stats.mode & 0o400) === 0) return false;
  if (wantWrite && (stats.mode & 0o200) === 0) return false;
  return true;
}
