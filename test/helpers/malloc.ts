/**
 * Allocator tests inside an emulated process: `runAllocatorProgram` runs a body as a process
 * on a fresh machine, `runChecked` also rethrows what the body threw (an `expect` failing inside
 * the process), and `PayloadModel` is the lab driver's model of the live blocks: each block
 * filled with its own byte, checked on free and realloc, never overlapping another.
 */
import { expect } from 'vitest';
import { bootKernel, buildMachine } from '../../kernel/boot/machine.ts';
import type { Task } from '../../kernel/proc/task.ts';
import type { UserContext } from '../../kernel/proc/uapi.ts';

/** Run `body` as process `name` on a fresh 64 MiB machine; the task and the kernel log's last line. */
export function runAllocatorProgram(
  name: string,
  body: (ctx: UserContext) => void,
  options: { overcommit?: 0 | 1 | 2 } = {},
): { t: Task; lastLog: string } {
  const m = bootKernel(buildMachine({ memoryBytes: 64 * 1024 * 1024 }), {
    loader: (path) => ({
      path,
      textBytes: 4096,
      dataBytes: 4096,
      bssBytes: 4096,
      main: function* (ctx) {
        body(ctx);
        yield;
        return 0;
      },
    }),
    ...(options.overcommit === undefined ? {} : { tunables: { overcommitMemory: options.overcommit } }),
  });
  const t = m.kernel.spawn(`/bin/${name}`, [name]);
  if (typeof t === 'number') throw new Error('spawn');
  m.kernel.run();
  return { t, lastLog: m.kernel.log.at(-1)?.text ?? '' };
}

/** runAllocatorProgram, rethrowing what the body threw; the process must then have exited 0. */
export function runChecked(
  name: string,
  body: (ctx: UserContext) => void,
  options: { overcommit?: 0 | 1 | 2 } = {},
): void {
  let failure: unknown;
  const { t } = runAllocatorProgram(
    name,
    (ctx) => {
      try {
        body(ctx);
      } catch (err) {
        failure = err;
      }
    },
    options,
  );
  if (failure !== undefined) throw failure;
  expect(t.waitStatus).toBe(0);
}

/** The live blocks of an allocator under test, with the byte each is filled with. */
export class PayloadModel {
  readonly live = new Map<number, { size: number; byte: number }>();
  private stamp = 0;

  constructor(
    private readonly ctx: UserContext,
    private readonly allocator: { usableSize(ptr: number): number },
  ) {}

  /** A new block of `n` bytes at `p`: aligned, big enough, overlapping no live block; filled. */
  add(p: number, n: number, align = 16): void {
    expect(p).not.toBe(0);
    expect(p % align).toBe(0);
    expect(this.allocator.usableSize(p)).toBeGreaterThanOrEqual(n);
    for (const [q, b] of this.live) expect(p + n <= q || q + b.size <= p).toBe(true);
    const byte = ++this.stamp & 0xff;
    this.ctx.cpu.fillBytes(p, n, byte);
    this.live.set(p, { size: n, byte });
  }

  /** The first min(size, n) bytes of block `p` still hold its byte. */
  check(p: number, n: number): void {
    const info = this.live.get(p)!;
    const got = new Uint8Array(Math.min(info.size, n));
    this.ctx.cpu.loadBytes(p, got);
    expect(got.every((b) => b === info.byte)).toBe(true);
  }

  /** Block `p` is about to be freed: its bytes are checked and it leaves the model. */
  freed(p: number): void {
    this.check(p, this.live.get(p)!.size);
    this.live.delete(p);
  }

  /** realloc moved (or kept) block `old` to `p` with `n` bytes: the kept bytes are checked, then refilled. */
  moved(old: number, p: number, n: number): void {
    const info = this.live.get(old)!;
    this.live.delete(old);
    this.live.set(p, info);
    this.check(p, n);
    this.live.delete(p);
    this.add(p, n);
  }

  /** A block to free or realloc, picked by `pick`; 0 when none is live. */
  victim(pick: number): number {
    const ptrs = [...this.live.keys()];
    return ptrs.length > 0 ? ptrs[pick % ptrs.length]! : 0;
  }

  /** The live pointers in address order. */
  sorted(): number[] {
    return [...this.live.keys()].sort((x, y) => x - y);
  }
}
