/**
 * Files, the page cache and mmap'd files: the file system calls with Linux's errno values, the
 * sandbox, shared and private file mappings and their writeback (checked in the host file's
 * bytes), SIGBUS past the end of a file, fork inheritance, and file pages under reclaim.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { renderMaps } from '../kernel/observe/procpid.ts';
import { meminfoFields } from '../kernel/observe/procsys.ts';
import {
  EACCES,
  EBADF,
  EEXIST,
  EINVAL,
  EISDIR,
  ENODEV,
  ENOENT,
  ENOTDIR,
  EPERM,
  ESPIPE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  MAP_SHARED,
  MS_ASYNC,
  MS_SYNC,
  O_APPEND,
  O_CREAT,
  O_EXCL,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
  PROT_READ,
  PROT_WRITE,
  SEEK_CUR,
  SEEK_END,
  SEEK_SET,
  SIGBUS,
  STAT_BYTES,
  type Syscalls,
  type UserContext,
  type UserCpu,
  WIFSIGNALED,
  WTERMSIG,
} from '../kernel/proc/uapi.ts';
import { bootTestMachine, PAGE, runPrograms, settleFreePages, type TestMachine } from './helpers/kernel.ts';

const RW = PROT_READ | PROT_WRITE;
const made: string[] = [];

/** A host folder holding `files` (name -> contents), removed after the test. */
function sandbox(files: Record<string, string | Uint8Array> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'vmlab-test-files-'));
  made.push(dir);
  for (const [name, data] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), data);
  }
  return dir;
}

afterEach(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

function boot(dir: string, options: { memoryMiB?: number; swapMiB?: number } = {}): TestMachine {
  return bootTestMachine({ files: { from: dir, writeThrough: true }, ...options });
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A scratch buffer in the process's memory (anonymous, 16 pages). */
function scratch(sys: Syscalls): number {
  const va = sys.mmap(0, 16 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (va < 0) throw new Error(`scratch mmap: ${va}`);
  return va;
}

function put(cpu: UserCpu, va: number, s: string): number {
  const b = enc(s);
  cpu.storeBytes(va, b);
  return b.length;
}

function get(cpu: UserCpu, va: number, n: number): string {
  const b = new Uint8Array(n);
  cpu.loadBytes(va, b);
  return new TextDecoder().decode(b);
}

/** Run one program on `m` and return what it recorded. */
function run(
  m: TestMachine,
  body: (ctx: UserContext, out: Record<string, unknown>) => Generator<void, number | undefined, void>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const [t] = runPrograms(m, [(ctx) => body(ctx, out)]);
  out.status = t!.waitStatus;
  return out;
}

describe('file system calls', () => {
  it('read, write, lseek, pread, pwrite and fstat go through the page cache; fsync reaches the host', () => {
    const dir = sandbox({ 'a.txt': 'hello world\n' });
    const m = boot(dir);
    const out = run(m, function* ({ sys, cpu }, o) {
      const buf = scratch(sys);
      const fd = sys.open('/a.txt', O_RDWR);
      o.fd = fd;
      o.read = sys.read(fd, buf, 5);
      o.text = get(cpu, buf, 5);
      o.pos = sys.lseek(fd, 0, SEEK_CUR);
      o.back = sys.lseek(fd, 0, SEEK_SET);
      put(cpu, buf, 'HELLO');
      o.wrote = sys.write(fd, buf, 5);
      o.hostBefore = readFileSync(join(dir, 'a.txt'), 'utf8'); // write-back cache: not there yet
      put(cpu, buf, 'W');
      o.pwrite = sys.pwrite64(fd, buf, 1, 6);
      o.pread = sys.pread64(fd, buf + 100, 12, 0);
      o.all = get(cpu, buf + 100, 12);
      o.posAfter = sys.lseek(fd, 0, SEEK_CUR); // pread/pwrite leave the position alone
      o.end = sys.lseek(fd, 0, SEEK_END);
      o.eof = sys.read(fd, buf, 10);
      o.fstat = sys.fstat(fd, buf + 200);
      const st = new Uint8Array(STAT_BYTES);
      cpu.loadBytes(buf + 200, st);
      const v = new DataView(st.buffer);
      o.size = v.getUint32(48, true);
      o.mode = v.getUint32(24, true);
      o.fsync = sys.fsync(fd);
      o.hostAfter = readFileSync(join(dir, 'a.txt'), 'utf8');
      o.close = sys.close(fd);
      o.closeAgain = sys.close(fd);
      yield;
      return 0;
    });
    expect(out).toMatchObject({
      fd: 3,
      read: 5,
      text: 'hello',
      pos: 5,
      back: 0,
      wrote: 5,
      hostBefore: 'hello world\n',
      pwrite: 1,
      pread: 12,
      all: 'HELLO World\n',
      posAfter: 5,
      end: 12,
      eof: 0,
      fstat: 0,
      size: 12,
      mode: 0o100000 | 0o644,
      fsync: 0,
      hostAfter: 'HELLO World\n',
      close: 0,
      closeAgain: -EBADF,
      status: 0,
    });
  });

  it('open flags and errors are Linux’s', () => {
    const dir = sandbox({ 'f.txt': 'x', 'sub/g.txt': 'g' });
    const m = boot(dir);
    const out = run(m, function* ({ sys, cpu }, o) {
      const buf = scratch(sys);
      o.missing = sys.open('/nope', O_RDONLY);
      o.excl = sys.open('/f.txt', O_CREAT | O_EXCL | O_WRONLY);
      o.dirWrite = sys.open('/sub', O_RDWR);
      o.notDir = sys.open('/f.txt/x', O_RDONLY);
      o.badFlags = sys.open('/f.txt', 3);
      const ro = sys.open('/f.txt', O_RDONLY);
      put(cpu, buf, 'zz');
      o.writeRo = sys.write(ro, buf, 2);
      const wo = sys.open('/f.txt', O_WRONLY | O_APPEND);
      o.readWo = sys.read(wo, buf, 1);
      o.append1 = sys.write(wo, buf, 2);
      sys.lseek(wo, 0, SEEK_SET);
      o.append2 = sys.write(wo, buf, 1); // O_APPEND: still at the end
      o.fsync = sys.fsync(wo);
      const dirFd = sys.open('/sub', O_RDONLY);
      o.readDir = sys.read(dirFd, buf, 1);
      o.mmapDir = sys.mmap(0, PAGE, PROT_READ, MAP_PRIVATE, dirFd, 0);
      o.created = sys.open('/sub/new.txt', O_CREAT | O_WRONLY | O_TRUNC, 0o600);
      o.trunc = sys.open('/sub/g.txt', O_WRONLY | O_TRUNC);
      o.seekTty = sys.lseek(1, 0, SEEK_SET);
      o.badWhence = sys.lseek(ro, 0, 9);
      o.negSeek = sys.lseek(ro, -5, SEEK_SET);
      o.unlinkDir = sys.unlink('/sub');
      o.unlinkMissing = sys.unlink('/none');
      yield;
      return 0;
    });
    expect(out).toMatchObject({
      missing: -ENOENT,
      excl: -EEXIST,
      dirWrite: -EISDIR,
      notDir: -ENOTDIR,
      badFlags: -EINVAL,
      writeRo: -EBADF,
      readWo: -EBADF,
      append1: 2,
      append2: 1,
      readDir: -EISDIR,
      mmapDir: -ENODEV,
      seekTty: -ESPIPE,
      badWhence: -EINVAL,
      negSeek: -EINVAL,
      unlinkDir: -EISDIR,
      unlinkMissing: -ENOENT,
      status: 0,
    });
    expect(readFileSync(join(dir, 'f.txt'), 'utf8')).toBe('xzzz');
    expect(readFileSync(join(dir, 'sub/g.txt'), 'utf8')).toBe('');
    expect(existsSync(join(dir, 'sub/new.txt'))).toBe(true);
  });

  it('a forked child shares descriptions (and their position) with its parent', () => {
    const dir = sandbox({ 'n.txt': '0123456789' });
    const m = boot(dir);
    const out = run(m, function* ({ sys, cpu }, o) {
      const buf = scratch(sys);
      const fd = sys.open('/n.txt', O_RDONLY);
      sys.fork(function* ({ sys: s }) {
        s.read(fd, buf, 4); // moves the shared position to 4
        yield;
        return 0;
      });
      yield* sys.wait4(-1, 0, 0);
      o.n = sys.read(fd, buf, 3);
      o.text = get(cpu, buf, 3);
      return 0;
    });
    expect(out).toMatchObject({ n: 3, text: '456', status: 0 });
  });

  it('an unlinked file stays readable while open, and its inode goes at the last close', () => {
    const dir = sandbox({ 'u.txt': 'still here' });
    const m = boot(dir);
    const out = run(m, function* ({ sys, cpu }, o) {
      const buf = scratch(sys);
      const fd = sys.open('/u.txt', O_RDONLY);
      o.unlink = sys.unlink('/u.txt');
      o.reopen = sys.open('/u.txt', O_RDONLY);
      o.n = sys.read(fd, buf, 10);
      o.text = get(cpu, buf, 10);
      sys.close(fd);
      yield;
      return 0;
    });
    expect(out).toMatchObject({ unlink: 0, reopen: -ENOENT, n: 10, text: 'still here' });
    expect(existsSync(join(dir, 'u.txt'))).toBe(false);
    expect(m.kernel.fs.inodes()).toEqual([]);
  });
});

describe('the sandbox', () => {
  it('.., absolute paths and symbolic links never reach outside the root', () => {
    const outside = sandbox({ 'secret.txt': 'do not touch' });
    const dir = sandbox({ 'in.txt': 'inside' });
    symlinkSync(join(outside, 'secret.txt'), join(dir, 'abs-link'));
    symlinkSync('../../../../../../..', join(dir, 'up-link'));
    symlinkSync('loop-b', join(dir, 'loop-a'));
    symlinkSync('loop-a', join(dir, 'loop-b'));
    const m = boot(dir);
    const rel = `../${outside.split('/').at(-1)}/secret.txt`;
    const out = run(m, function* ({ sys }, o) {
      o.dotdot = sys.open(`../../../..${outside}/secret.txt`, O_RDONLY);
      o.relative = sys.open(rel, O_RDWR);
      o.absolute = sys.open(`${outside}/secret.txt`, O_RDONLY);
      o.absLink = sys.open('/abs-link', O_RDONLY);
      o.upLink = sys.open(`/up-link${outside}/secret.txt`, O_RDONLY);
      o.loop = sys.open('/loop-a', O_RDONLY);
      o.unlinkOut = sys.unlink(`../..${outside}/secret.txt`);
      o.createOut = sys.open('../escaped.txt', O_CREAT | O_WRONLY);
      o.inside = sys.open('/../in.txt', O_RDONLY);
      yield;
      return 0;
    });
    expect(out).toMatchObject({
      dotdot: -ENOENT,
      relative: -ENOENT,
      absolute: -ENOENT,
      absLink: -ENOENT,
      upLink: -ENOENT,
      loop: -40, // ELOOP
      unlinkOut: -ENOENT,
      inside: 4, // descriptor 3 is the file created at the root
    });
    expect(out.createOut).toBeGreaterThanOrEqual(0);
    expect(readFileSync(join(outside, 'secret.txt'), 'utf8')).toBe('do not touch');
    expect(existsSync(join(dir, 'escaped.txt'))).toBe(true); // `..` at the root stays at the root
    expect(existsSync(join(dir, '..', 'escaped.txt'))).toBe(false);
  });

  it('by default a run works on a scratch copy, never on the folder itself', () => {
    const dir = sandbox({ 'keep.txt': 'original' });
    const m = bootTestMachine({ files: { from: dir } });
    run(m, function* ({ sys, cpu }) {
      const buf = scratch(sys);
      const fd = sys.open('/keep.txt', O_WRONLY | O_TRUNC);
      sys.write(fd, buf, put(cpu, buf, 'changed'));
      sys.fsync(fd);
      yield;
      return 0;
    });
    const root = m.kernel.fs.root;
    expect(readFileSync(join(root, 'keep.txt'), 'utf8')).toBe('changed');
    m.shutdown();
    expect(readFileSync(join(dir, 'keep.txt'), 'utf8')).toBe('original');
    expect(existsSync(root)).toBe(false);
  });
});

describe('mmap of files', () => {
  const text = 'A'.repeat(PAGE) + 'B'.repeat(PAGE) + 'C'.repeat(100);

  it('MAP_SHARED writes reach the file on msync and munmap; MAP_PRIVATE writes never do', () => {
    const dir = sandbox({ 's.bin': text, 'p.bin': text });
    const m = boot(dir);
    const out = run(m, function* ({ sys, cpu }, o) {
      const fs = sys.open('/s.bin', O_RDWR);
      const fp = sys.open('/p.bin', O_RDWR);
      const s = sys.mmap(0, 3 * PAGE, RW, MAP_SHARED, fs, 0);
      const p = sys.mmap(0, 3 * PAGE, RW, MAP_PRIVATE, fp, 0);
      o.sharedRead = get(cpu, s + PAGE - 1, 2);
      cpu.store8(s, 0x61); // 'a'
      cpu.store8(p, 0x61);
      o.privateRead = get(cpu, p, 2);
      o.hostBeforeMsync = readFileSync(join(dir, 's.bin'), 'latin1').slice(0, 2);
      o.msync = sys.msync(s, PAGE, MS_SYNC);
      o.hostAfterMsync = readFileSync(join(dir, 's.bin'), 'latin1').slice(0, 2);
      cpu.store8(s + PAGE, 0x62); // 'b'
      o.async = sys.msync(s, 3 * PAGE, MS_ASYNC);
      cpu.store8(s + 2 * PAGE, 0x63); // 'c', then munmap writes it
      o.munmap = sys.munmap(s, 3 * PAGE);
      o.hostAfterMunmap = readFileSync(join(dir, 's.bin'), 'latin1');
      o.badFlags = sys.msync(p, PAGE, MS_SYNC | MS_ASYNC);
      o.unmapped = sys.msync(s, PAGE, MS_SYNC);
      o.syncPrivate = sys.msync(p, 3 * PAGE, MS_SYNC);
      yield;
      return 0;
    });
    expect(out).toMatchObject({
      sharedRead: 'AB',
      privateRead: 'aA',
      hostBeforeMsync: 'AA',
      msync: 0,
      hostAfterMsync: 'aA',
      async: 0,
      munmap: 0,
      badFlags: -EINVAL,
      unmapped: -12, // ENOMEM: nothing mapped there any more
      syncPrivate: 0,
      status: 0,
    });
    expect(out.hostAfterMunmap).toBe(`a${'A'.repeat(PAGE - 1)}b${'B'.repeat(PAGE - 1)}c${'C'.repeat(99)}`);
    expect(readFileSync(join(dir, 'p.bin'), 'latin1')).toBe(text);
  });

  it('a shared mapping reaches the file when its process exits', () => {
    const dir = sandbox({ 'e.bin': text });
    const m = boot(dir);
    run(m, function* ({ sys, cpu }) {
      const s = sys.mmap(0, PAGE, RW, MAP_SHARED, sys.open('/e.bin', O_RDWR), 0);
      cpu.store8(s + 10, 0x7a);
      yield;
      return 0;
    });
    expect(readFileSync(join(dir, 'e.bin'), 'latin1')[10]).toBe('z');
  });

  it('two processes mapping a file see each other’s writes at once, and read() agrees', () => {
    const dir = sandbox({ 'shared.bin': text });
    const m = boot(dir);
    const seen: Record<string, unknown> = {};
    const writer = m.start(function* ({ sys, cpu }) {
      const s = sys.mmap(0, PAGE, RW, MAP_SHARED, sys.open('/shared.bin', O_RDWR), 0);
      cpu.store32(s + 8, 0x44434241); // "ABCD"
      seen.writerPa = sys.vmlab_pageinfo(s).physAddr;
      yield* sys.nanosleep(2_000_000);
      seen.afterReader = get(cpu, s + 100, 4);
      return 0;
    });
    const reader = m.start(function* ({ sys, cpu }) {
      yield* sys.nanosleep(1_000_000);
      const fd = sys.open('/shared.bin', O_RDWR);
      const s = sys.mmap(0, PAGE, PROT_READ, MAP_SHARED, fd, 0);
      seen.readerSees = get(cpu, s + 8, 4);
      seen.readerPa = sys.vmlab_pageinfo(s).physAddr;
      const buf = scratch(sys);
      sys.pread64(fd, buf, 4, 8);
      seen.readSees = get(cpu, buf, 4);
      put(cpu, buf, 'wxyz');
      sys.pwrite64(fd, buf, 4, 100); // write() lands in the mapped page
      return 0;
    });
    m.runToEnd();
    expect(writer.waitStatus).toBe(0);
    expect(reader.waitStatus).toBe(0);
    expect(seen).toMatchObject({ readerSees: 'ABCD', readSees: 'ABCD', afterReader: 'wxyz' });
    expect(seen.readerPa).toBe(seen.writerPa); // one page-cache frame
  });

  it('refuses what Linux refuses', () => {
    const dir = sandbox({ 'r.bin': text });
    const m = boot(dir);
    const out = run(m, function* ({ sys }, o) {
      const ro = sys.open('/r.bin', O_RDONLY);
      const rw = sys.open('/r.bin', O_RDWR);
      const wo = sys.open('/r.bin', O_WRONLY);
      o.sharedWriteRo = sys.mmap(0, PAGE, RW, MAP_SHARED, ro, 0);
      o.sharedReadRo = sys.mmap(0, PAGE, PROT_READ, MAP_SHARED, ro, 0) > 0;
      o.privateWriteRo = sys.mmap(0, PAGE, RW, MAP_PRIVATE, ro, 0) > 0;
      o.writeOnly = sys.mmap(0, PAGE, PROT_READ, MAP_SHARED, wo, 0);
      o.badFd = sys.mmap(0, PAGE, PROT_READ, MAP_SHARED, 77, 0);
      o.console = sys.mmap(0, PAGE, PROT_READ, MAP_SHARED, 1, 0);
      o.zeroLength = sys.mmap(0, 0, PROT_READ, MAP_SHARED, rw, 0);
      o.unalignedOffset = sys.mmap(0, PAGE, PROT_READ, MAP_SHARED, rw, 100);
      o.unalignedFixed = sys.mmap(0x10000001, PAGE, PROT_READ, MAP_SHARED | MAP_FIXED, rw, 0);
      o.fixedZero = sys.mmap(0, PAGE, PROT_READ, MAP_SHARED | MAP_FIXED, rw, 0);
      const at = sys.mmap(0, 2 * PAGE, PROT_READ, MAP_SHARED, rw, 0);
      o.noReplace = sys.mmap(at + PAGE, PAGE, PROT_READ, MAP_SHARED | MAP_FIXED_NOREPLACE, rw, 0);
      const roMap = sys.mmap(0, PAGE, PROT_READ, MAP_SHARED, ro, 0);
      o.mprotectUp = sys.mprotect(roMap, PAGE, RW);
      yield;
      return 0;
    });
    expect(out).toMatchObject({
      sharedWriteRo: -EACCES,
      sharedReadRo: true,
      privateWriteRo: true,
      writeOnly: -EACCES,
      badFd: -EBADF,
      console: -ENODEV,
      zeroLength: -EINVAL,
      unalignedOffset: -EINVAL,
      unalignedFixed: -EINVAL,
      fixedZero: -EPERM,
      noReplace: -EEXIST,
      mprotectUp: -EACCES,
      status: 0,
    });
  });

  it('a page wholly past the end of the file is SIGBUS; the tail of the last page reads zeros and is never written back', () => {
    const dir = sandbox({ 't.bin': text }); // 2 pages and 100 bytes
    const m = boot(dir);
    const out = run(m, function* ({ sys, cpu }, o) {
      const s = sys.mmap(0, 4 * PAGE, RW, MAP_SHARED, sys.open('/t.bin', O_RDWR), 0);
      o.tail = cpu.load8(s + 2 * PAGE + 100);
      o.last = String.fromCharCode(cpu.load8(s + 2 * PAGE + 99));
      cpu.store8(s + 2 * PAGE + 200, 0x58); // in the page, past the end
      sys.msync(s, 4 * PAGE, MS_SYNC);
      o.size = readFileSync(join(dir, 't.bin')).length;
      cpu.load8(s + 3 * PAGE); // SIGBUS
      o.survived = true;
      yield;
      return 0;
    });
    expect(out).toMatchObject({ tail: 0, last: 'C', size: 2 * PAGE + 100 });
    expect(out.survived).toBeUndefined();
    expect(WIFSIGNALED(out.status as number) && WTERMSIG(out.status as number)).toBe(SIGBUS);
    expect(m.kernel.log.some((l) => /bus error at/.test(l.text))).toBe(true);
  });

  it('truncating a mapped file makes its lost pages SIGBUS', () => {
    const dir = sandbox({ 'cut.bin': text });
    const m = boot(dir);
    const out = run(m, function* ({ sys, cpu }, o) {
      const fd = sys.open('/cut.bin', O_RDWR);
      const s = sys.mmap(0, 3 * PAGE, RW, MAP_PRIVATE, fd, 0);
      cpu.store8(s + PAGE, 1); // a private copy of page 1
      o.ftruncate = sys.ftruncate(fd, PAGE);
      o.first = String.fromCharCode(cpu.load8(s));
      cpu.load8(s + PAGE);
      yield;
      return 0;
    });
    expect(out).toMatchObject({ ftruncate: 0, first: 'A' });
    expect(WTERMSIG(out.status as number)).toBe(SIGBUS);
    expect(readFileSync(join(dir, 'cut.bin')).length).toBe(PAGE);
  });

  it('fork: shared mappings stay shared, private ones copy on write', () => {
    const dir = sandbox({ 'f.bin': text });
    const m = boot(dir);
    const out = run(m, function* ({ sys, cpu }, o) {
      const fd = sys.open('/f.bin', O_RDWR);
      const s = sys.mmap(0, PAGE, RW, MAP_SHARED, fd, 0);
      const p = sys.mmap(0, PAGE, RW, MAP_PRIVATE, fd, 0);
      cpu.store8(p, 0x70); // 'p' in the parent's private copy
      sys.fork(function* ({ cpu: c }) {
        o.childPrivate = String.fromCharCode(c.load8(p));
        c.store8(p + 1, 0x71); // the child's own copy
        c.store8(s + 1, 0x73); // the file's page
        yield;
        return 0;
      });
      yield* sys.wait4(-1, 0, 0);
      o.parentPrivate = get(cpu, p, 2);
      o.parentShared = get(cpu, s, 2);
      return 0;
    });
    expect(out).toMatchObject({ childPrivate: 'p', parentPrivate: 'pA', parentShared: 'As', status: 0 });
    expect(readFileSync(join(dir, 'f.bin'), 'latin1').slice(0, 2)).toBe('As');
  });

  it('a lazily mapped page shows a write made to the file before its first touch', () => {
    const dir = sandbox({ 'l.bin': text });
    const m = boot(dir);
    const out = run(m, function* ({ sys, cpu }, o) {
      const fd = sys.open('/l.bin', O_RDWR);
      const p = sys.mmap(0, 2 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
      const s = sys.mmap(0, 2 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
      const buf = scratch(sys);
      sys.pwrite64(fd, buf, put(cpu, buf, 'late'), PAGE);
      o.private = get(cpu, p + PAGE, 4);
      o.shared = get(cpu, s + PAGE, 4);
      yield;
      return 0;
    });
    expect(out).toMatchObject({ private: 'late', shared: 'late', status: 0 });
  });

  it('maps shows the file, its offset, device and inode', () => {
    const dir = sandbox({ 'm.bin': text });
    const m = boot(dir);
    let line = '';
    run(m, function* ({ sys }) {
      const fd = sys.open('/m.bin', O_RDONLY);
      sys.mmap(0, PAGE, PROT_READ, MAP_PRIVATE, fd, PAGE);
      const task = [...m.kernel.tasks.values()].find((t) => t.mm !== null && t.comm !== 'kswapd0')!;
      const v = task
        .mm!.vmas.all()
        .find((x) => x.backing.kind === 'file' && x.backing.file.path === '/m.bin')!;
      const ino = v.backing.kind === 'file' ? v.backing.file.ino : -1;
      line = `${v.pgoff} ${ino}`;
      return 0;
    });
    expect(line).toMatch(/^1 \d+$/);
  });
});

describe('file pages and memory', () => {
  it('sequential faults read ahead: fewer major faults than pages', () => {
    const pages = 64;
    const dir = sandbox({ 'big.bin': new Uint8Array(pages * PAGE).fill(7) });
    const m = boot(dir);
    const [t] = runPrograms(m, [
      function* ({ sys, cpu }) {
        const p = sys.mmap(0, pages * PAGE, PROT_READ, MAP_PRIVATE, sys.open('/big.bin', O_RDONLY), 0);
        let sum = 0;
        for (let i = 0; i < pages; i++) {
          sum += cpu.load8(p + i * PAGE);
          yield;
        }
        return sum === 7 * pages ? 0 : 1;
      },
    ]);
    expect(t!.waitStatus).toBe(0);
    expect(t!.majFlt).toBeGreaterThan(0);
    expect(t!.majFlt).toBeLessThan(10); // windows of 4, 8, 16, 32 pages
    expect(t!.minFlt + t!.majFlt).toBeGreaterThanOrEqual(pages);
    expect(m.kernel.pageCache.readaheadPages).toBeGreaterThan(pages / 2);
  });

  it('meminfo counts Cached and Dirty; fsync cleans; nothing leaks once caches are dropped', () => {
    const dir = sandbox({ 'c.bin': new Uint8Array(8 * PAGE) });
    const m = boot(dir);
    const before = settleFreePages(m);
    const field = (name: string): number => meminfoFields(m.kernel).find(([k]) => k === name)![1];
    const out = run(m, function* ({ sys }, o) {
      const fd = sys.open('/c.bin', O_RDWR);
      const buf = scratch(sys);
      sys.read(fd, buf, 8 * PAGE);
      o.cached = field('Cached');
      sys.pwrite64(fd, buf, 3 * PAGE, 0);
      o.dirty = field('Dirty');
      sys.fsync(fd);
      o.dirtyAfter = field('Dirty');
      o.writeback = field('Writeback');
      yield;
      return 0;
    });
    expect(out).toMatchObject({ cached: 32, dirty: 12, dirtyAfter: 0, status: 0 });
    expect(out.writeback).toBeGreaterThan(0); // the disk had not finished at once
    expect(m.kernel.pageCache.nrPages).toBe(8);
    expect(m.kernel.pageCache.dropCaches()).toBe(8);
    expect(m.kernel.fs.inodes()).toEqual([]);
    expect(settleFreePages(m)).toBe(before);
  });

  it('a dirty shared page evicted under memory pressure keeps its data', () => {
    const filePages = 512; // 2 MiB
    const dir = sandbox({ 'd.bin': new Uint8Array(filePages * PAGE) });
    const m = boot(dir, { memoryMiB: 12 });
    const out = run(m, function* ({ sys, cpu }, o) {
      const s = sys.mmap(0, filePages * PAGE, RW, MAP_SHARED, sys.open('/d.bin', O_RDWR), 0);
      for (let i = 0; i < filePages; i++) {
        cpu.store32(s + i * PAGE, i * 2654435761);
        if (i % 16 === 0) yield;
      }
      // Anonymous memory with nowhere to swap, all but a few of the free pages: the file pages
      // must make room.
      const anonPages = m.kernel.hw.buddy.freePages() - 16;
      const a = sys.mmap(0, anonPages * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      for (let i = 0; i < anonPages; i++) {
        cpu.store8(a + i * PAGE, 1);
        if (i % 16 === 0) yield;
      }
      o.stolen = m.kernel.events.pgsteal_file;
      let bad = 0;
      for (let i = 0; i < filePages; i++) if (cpu.load32(s + i * PAGE) !== (i * 2654435761) >>> 0) bad++;
      o.bad = bad;
      return 0;
    });
    expect(out.status).toBe(0);
    expect(out.stolen).toBeGreaterThan(0);
    expect(out.bad).toBe(0);
    const host = readFileSync(join(dir, 'd.bin'));
    const view = new DataView(host.buffer, host.byteOffset);
    let bad = 0;
    for (let i = 0; i < filePages; i++) if (view.getUint32(i * PAGE, true) !== (i * 2654435761) >>> 0) bad++;
    expect(bad).toBe(0);
  });
});

describe('/proc inside the machine', () => {
  it('a process reads /proc/self/maps, /proc/meminfo and its pagemap through open() and read()', () => {
    const dir = sandbox({ 'proc/hidden.txt': 'a sandbox proc folder is hidden by the mount' });
    const m = boot(dir);
    let rendered = '';
    const out = run(m, function* ({ sys, cpu }, o) {
      const buf = sys.mmap(0, 16 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      cpu.store8(buf + 15 * PAGE, 1); // the last page touched, the one before it never
      const fd = sys.open('/proc/self/maps', O_RDONLY);
      const n = sys.read(fd, buf + 2 * PAGE, 8 * PAGE);
      o.maps = get(cpu, buf + 2 * PAGE, n);
      rendered = renderMaps([...m.kernel.tasks.values()].find((t) => t.mm !== null && !t.kernelThread)!);
      o.eof = sys.read(fd, buf, 10);
      o.meminfo = get(cpu, buf, sys.read(sys.open('/proc/meminfo', O_RDONLY), buf, PAGE)).split('\n')[0];
      const pm = sys.open('/proc/self/pagemap', O_RDONLY);
      o.pagemap = sys.pread64(pm, buf + 3 * PAGE, 16, ((buf + 14 * PAGE) / PAGE) * 8);
      const bytes = new Uint8Array(16);
      cpu.loadBytes(buf + 3 * PAGE, bytes);
      o.present = [bytes[7]! >> 7, bytes[15]! >> 7]; // bit 63: present (the page before is not)
      o.write = sys.open('/proc/meminfo', O_RDWR);
      o.missing = sys.open('/proc/nosuch', O_RDONLY);
      o.hidden = sys.open('/proc/hidden.txt', O_RDONLY);
      o.mmap = sys.mmap(0, PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
      o.fstat = sys.fstat(fd, buf);
      const st = new DataView(new ArrayBuffer(STAT_BYTES));
      cpu.loadBytes(buf, new Uint8Array(st.buffer));
      o.mode = st.getUint32(24, true);
      o.size = st.getUint32(48, true);
      return 0;
    });
    expect(out).toMatchObject({
      eof: 0,
      meminfo: expect.stringMatching(/^MemTotal: +\d+ kB$/),
      pagemap: 16,
      present: [0, 1],
      write: -EACCES,
      missing: -ENOENT,
      hidden: -ENOENT,
      mmap: -ENODEV,
      fstat: 0,
      mode: 0o100444,
      size: 0,
      status: 0,
    });
    expect(out.maps).toBe(rendered);
  });
});
