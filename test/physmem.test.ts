/**
 * Physical memory: sparse frames, little-endian access by physical address (across frames
 * too), 64-bit values, ranges, whole-frame operations and machine checks. Values are checked
 * byte by byte against arithmetic written out here, and a property test runs random writes
 * against a flat Uint8Array model.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MachineCheck, PhysicalMemory } from '../kernel/hw/physmem.ts';

function small(frameCount = 8, pageBytes = 4096): PhysicalMemory {
  return new PhysicalMemory({ frameCount, pageBytes });
}

function bytesAt(mem: PhysicalMemory, pa: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => mem.read8(pa + i));
}

function expectMachineCheck(fn: () => unknown, physAddr?: number): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(MachineCheck);
  if (physAddr !== undefined) expect((caught as MachineCheck).physAddr).toBe(physAddr);
}

describe('sparse backing', () => {
  it('reads zero from untouched frames and spends host memory only on a write', () => {
    const mem = small(16);
    expect(mem.sizeBytes).toBe(16 * 4096);
    expect(mem.read8(0)).toBe(0);
    expect(mem.read32(5 * 4096 + 100)).toBe(0);
    expect(mem.read64(15 * 4096 + 4088)).toBe(0);
    const buf = new Uint8Array(9000).fill(0xee);
    mem.readBytes(4000, buf);
    expect(buf.every((b) => b === 0)).toBe(true);
    expect(mem.materializedFrames).toBe(0);
    expect(mem.hostBytes()).toBe(0);
    expect(mem.isFrameUntouched(5)).toBe(true);

    mem.write8(5 * 4096 + 7, 0x5a);
    expect(mem.materializedFrames).toBe(1);
    expect(mem.hostBytes()).toBe(4096);
    expect(mem.isFrameUntouched(5)).toBe(false);
    expect(mem.isFrameUntouched(4)).toBe(true);
    // Other bytes of the newly backed frame still read zero.
    expect(mem.read8(5 * 4096 + 6)).toBe(0);
    expect(mem.read8(5 * 4096 + 8)).toBe(0);

    // Writing zero is still a write: the frame is backed (the hardware does not look at values).
    mem.write8(9 * 4096, 0);
    expect(mem.materializedFrames).toBe(2);
    // A second write to a backed frame costs nothing more.
    mem.write32(5 * 4096 + 200, 0xdeadbeef);
    expect(mem.materializedFrames).toBe(2);
    expect(mem.hostBytes()).toBe(2 * 4096);
  });

  it('constructs a 16 GiB machine of 4 KiB pages and addresses its top byte', () => {
    const frames = (16 * 2 ** 30) / 4096; // 2^34 / 2^12 = 2^22 = 4194304 frames
    const mem = new PhysicalMemory({ frameCount: frames, pageBytes: 4096 });
    expect(mem.frameCount).toBe(4194304);
    expect(mem.sizeBytes).toBe(2 ** 34);
    expect(mem.pageShift).toBe(12);
    expect(mem.materializedFrames).toBe(0);
    const top = 2 ** 34 - 1;
    expect(mem.read8(top)).toBe(0);
    mem.write8(top, 0x77);
    expect(mem.read8(top)).toBe(0x77);
    expect(mem.isFrameUntouched(frames - 1)).toBe(false);
    // An address above 2^32 (frame number by division, not by a 32-bit shift).
    const high = 3 * 2 ** 32 + 0x1234; // frame 3 * 2^20 + 1, offset 0x234
    mem.write32(high, 0x11223344);
    expect(mem.isFrameUntouched(3 * 2 ** 20 + 1)).toBe(false);
    expect(bytesAt(mem, high, 4)).toEqual([0x44, 0x33, 0x22, 0x11]);
    expect(mem.materializedFrames).toBe(2);
    expectMachineCheck(() => mem.read8(2 ** 34), 2 ** 34);
  });

  it('recycles released buffers zeroed: a frame backed after another was released reads zero', () => {
    const mem = small(4, 64);
    mem.fillFrame(1, 0xaa);
    mem.zeroFrameContents(1); // frame 1's buffer goes back to the pool, still full of 0xaa
    mem.write8(2 * 64 + 3, 0x01); // frame 2 takes a buffer from the pool
    expect(bytesAt(mem, 2 * 64, 64)).toEqual(Array.from({ length: 64 }, (_, i) => (i === 3 ? 1 : 0)));
    expect(bytesAt(mem, 64, 64).every((b) => b === 0)).toBe(true);
  });

  it('refuses impossible geometry', () => {
    expect(() => new PhysicalMemory({ frameCount: 4, pageBytes: 3000 })).toThrow(RangeError);
    expect(() => new PhysicalMemory({ frameCount: 4, pageBytes: 0 })).toThrow(RangeError);
    expect(() => new PhysicalMemory({ frameCount: 0, pageBytes: 4096 })).toThrow(RangeError);
    expect(() => new PhysicalMemory({ frameCount: 2.5, pageBytes: 4096 })).toThrow(RangeError);
    expect(() => new PhysicalMemory({ frameCount: 2 ** 31, pageBytes: 4096 })).toThrow(RangeError);
  });
});

describe('little-endian access by physical address', () => {
  it('stores 16, 32 and 64-bit values least significant byte first', () => {
    const mem = small();
    mem.write16(0x100, 0xabcd);
    expect(bytesAt(mem, 0x100, 2)).toEqual([0xcd, 0xab]);
    expect(mem.read16(0x100)).toBe(0xabcd);

    mem.write32(0x200, 0x12345678);
    expect(bytesAt(mem, 0x200, 4)).toEqual([0x78, 0x56, 0x34, 0x12]);
    expect(mem.read32(0x200)).toBe(0x12345678);
    // Top bit set: read back unsigned.
    mem.write32(0x204, 0xfedcba98);
    expect(mem.read32(0x204)).toBe(0xfedcba98);
    expect(mem.read16(0x206)).toBe(0xfedc);

    // 0x001f_2345_6789_abcd < 2^53: bytes cd ab 89 67 45 23 1f 00
    mem.write64(0x300, 0x1f23456789abcd);
    expect(bytesAt(mem, 0x300, 8)).toEqual([0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x1f, 0x00]);
    expect(mem.read64(0x300)).toBe(0x1f23456789abcd);
    expect(mem.read64Big(0x300)).toBe(0x1f23456789abcdn);

    // write8/16/32 keep only the low bits of a wider value.
    mem.write8(0x400, 0x1ff);
    expect(mem.read8(0x400)).toBe(0xff);
    mem.write16(0x402, 0x12345);
    expect(mem.read16(0x402)).toBe(0x2345);
  });

  it('handles accesses that straddle two frames', () => {
    const mem = small(4, 4096);
    const edge = 4096; // first byte of frame 1
    mem.write16(edge - 1, 0xbeef); // ef in frame 0, be in frame 1
    expect(mem.read8(edge - 1)).toBe(0xef);
    expect(mem.read8(edge)).toBe(0xbe);
    expect(mem.read16(edge - 1)).toBe(0xbeef);

    mem.write32(2 * 4096 - 3, 0xa1b2c3d4); // 3 bytes in frame 1, 1 in frame 2
    expect(bytesAt(mem, 2 * 4096 - 3, 4)).toEqual([0xd4, 0xc3, 0xb2, 0xa1]);
    expect(mem.read32(2 * 4096 - 3)).toBe(0xa1b2c3d4);
    expect(mem.isFrameUntouched(2)).toBe(false);

    mem.write64(3 * 4096 - 5, 0x10203040506070); // 5 bytes in frame 2, 3 in frame 3
    expect(bytesAt(mem, 3 * 4096 - 5, 8)).toEqual([0x70, 0x60, 0x50, 0x40, 0x30, 0x20, 0x10, 0x00]);
    expect(mem.read64(3 * 4096 - 5)).toBe(0x10203040506070);
    expect(mem.read64Big(3 * 4096 - 5)).toBe(0x10203040506070n);

    mem.write64Big(4096 - 2, 0xffeeddccbbaa9988n);
    expect(bytesAt(mem, 4096 - 2, 8)).toEqual([0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
    expect(mem.read64Big(4096 - 2)).toBe(0xffeeddccbbaa9988n);
  });

  it('read64Big and write64Big carry all 64 bits; write64Big wraps modulo 2^64', () => {
    const mem = small();
    mem.write64Big(0, 0x8000000000000001n);
    expect(bytesAt(mem, 0, 8)).toEqual([1, 0, 0, 0, 0, 0, 0, 0x80]);
    expect(mem.read64Big(0)).toBe(0x8000000000000001n);
    mem.write64Big(8, -2n); // two's complement 0xffff_ffff_ffff_fffe
    expect(mem.read64Big(8)).toBe(0xfffffffffffffffen);
    mem.write64Big(16, (1n << 64n) + 5n);
    expect(mem.read64Big(16)).toBe(5n);
  });

  it('stores a negative write64 in two complement', () => {
    const mem = small();
    mem.write64(0, -1);
    expect(bytesAt(mem, 0, 8)).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect(mem.read64Big(0)).toBe(0xffffffffffffffffn);
    // -(2^32 + 1) = 0xffff_fffe_ffff_ffff
    mem.write64(8, -(2 ** 32 + 1));
    expect(bytesAt(mem, 8, 8)).toEqual([0xff, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff]);
    // The most negative safe integer: -(2^53 - 1) = 0xffe0_0000_0000_0001
    mem.write64(16, -(2 ** 53 - 1));
    expect(mem.read64Big(16)).toBe(0xffe0000000000001n);
  });

  it('write64 then read64Big gives the value modulo 2^64 for every safe integer (property)', () => {
    const mem = small(2, 4096);
    fc.assert(
      fc.property(
        fc.maxSafeInteger().chain((v) => fc.tuple(fc.constant(v), fc.integer({ min: 0, max: 8192 - 8 }))),
        ([v, pa]) => {
          mem.write64(pa, v);
          expect(mem.read64Big(pa)).toBe(BigInt.asUintN(64, BigInt(v)));
          if (v >= 0) expect(mem.read64(pa)).toBe(v);
        },
      ),
      { seed: 7, numRuns: 300 },
    );
  });
});

describe('ranges', () => {
  it('copies ranges in and out across frames, with an offset and length into the buffer', () => {
    const mem = small(4, 64);
    const src = Uint8Array.from({ length: 150 }, (_, i) => (i * 7 + 1) & 0xff);
    mem.writeBytes(40, src); // 40..189: frames 0 (24 bytes), 1 (64), 2 (62)
    expect(mem.materializedFrames).toBe(3);
    expect(mem.isFrameUntouched(3)).toBe(true);
    for (let i = 0; i < 150; i++) expect(mem.read8(40 + i)).toBe(src[i]);
    expect(mem.read8(39)).toBe(0);
    expect(mem.read8(190)).toBe(0);

    const dst = new Uint8Array(200).fill(0xcc);
    mem.readBytes(50, dst, 10, 100); // dst[10..109] = mem[50..149]
    expect(dst[9]).toBe(0xcc);
    expect(dst[110]).toBe(0xcc);
    for (let i = 0; i < 100; i++) expect(dst[10 + i]).toBe(src[10 + i]);

    // Default length: the rest of the buffer after the offset.
    const tail = new Uint8Array(8);
    mem.readBytes(40, tail, 4);
    expect([...tail]).toEqual([0, 0, 0, 0, src[0], src[1], src[2], src[3]]);
  });

  it('zero-length ranges touch nothing, even at the end of memory', () => {
    const mem = small(2, 64);
    mem.writeBytes(128, new Uint8Array(0));
    mem.readBytes(128, new Uint8Array(0));
    expect(mem.materializedFrames).toBe(0);
  });

  it('matches a flat byte-array model under random writes of every width (property)', () => {
    const pageBytes = 16;
    const frames = 6;
    const size = pageBytes * frames;
    const op = fc.oneof(
      fc.record({ w: fc.constant(1), pa: fc.nat(size - 1), v: fc.nat(0xff) }),
      fc.record({ w: fc.constant(2), pa: fc.nat(size - 2), v: fc.nat(0xffff) }),
      fc.record({ w: fc.constant(4), pa: fc.nat(size - 4), v: fc.nat(0xffffffff) }),
      fc.record({ w: fc.constant(8), pa: fc.nat(size - 8), v: fc.maxSafeInteger() }),
      fc.record({ w: fc.constant(0), pa: fc.nat(size - 1), v: fc.nat(0xff) }), // writeBytes of 1..20 bytes
      fc.record({ w: fc.constant(-1), pa: fc.nat(frames - 1), v: fc.nat(0xff) }), // fillFrame
      fc.record({ w: fc.constant(-2), pa: fc.nat(frames - 1), v: fc.nat(0xffffffff) }), // frameWrite32, aligned
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const mem = new PhysicalMemory({ frameCount: frames, pageBytes });
        const model = new Uint8Array(size);
        const view = new DataView(model.buffer);
        for (const { w, pa, v } of ops) {
          if (w === 1) {
            mem.write8(pa, v);
            view.setUint8(pa, v);
          } else if (w === 2) {
            mem.write16(pa, v);
            view.setUint16(pa, v, true);
          } else if (w === 4) {
            mem.write32(pa, v);
            view.setUint32(pa, v, true);
          } else if (w === 8) {
            mem.write64(pa, v);
            view.setBigInt64(pa, BigInt(v), true);
          } else if (w === 0) {
            const n = Math.min(1 + (v % 20), size - pa);
            const src = Uint8Array.from({ length: n }, (_, i) => (v + i) & 0xff);
            mem.writeBytes(pa, src);
            model.set(src, pa);
          } else if (w === -2) {
            const off = (v % (pageBytes / 4)) * 4;
            mem.frameWrite32(pa, off, v);
            view.setUint32(pa * pageBytes + off, v, true);
          } else {
            mem.fillFrame(pa, v);
            model.fill(v, pa * pageBytes, (pa + 1) * pageBytes);
          }
        }
        const all = new Uint8Array(size);
        mem.readBytes(0, all);
        expect([...all]).toEqual([...model]);
        for (let pa = 0; pa + 4 <= size; pa += 3) {
          expect(mem.read32(pa)).toBe(view.getUint32(pa, true));
          expect(mem.read16(pa)).toBe(view.getUint16(pa, true));
        }
        for (let pa = 0; pa + 8 <= size; pa += 5) {
          expect(mem.read64Big(pa)).toBe(view.getBigUint64(pa, true));
        }
        // The frame-level reads the MMU uses: aligned words come from the frames' word views,
        // which must follow every release, recycle and rematerialization of a frame's buffer.
        for (let pa = 0; pa + 4 <= size; pa += 2) {
          const pfn = Math.floor(pa / pageBytes);
          const off = pa % pageBytes;
          if (off + 4 <= pageBytes) expect(mem.frameRead32(pfn, off)).toBe(view.getUint32(pa, true));
        }
        // materializedFrames == number of frames not backed by the shared zero frame.
        let backed = 0;
        for (let f = 0; f < frames; f++) if (!mem.isFrameUntouched(f)) backed++;
        expect(mem.materializedFrames).toBe(backed);
        expect(mem.hostBytes()).toBe(backed * pageBytes);
      }),
      { seed: 11, numRuns: 200 },
    );
  });
});

describe('machine checks', () => {
  it('refuses any access past installed memory, never wrapping around', () => {
    const mem = small(2, 4096);
    const size = 8192;
    expectMachineCheck(() => mem.read8(size), size);
    expectMachineCheck(() => mem.write8(size, 1), size);
    expectMachineCheck(() => mem.read8(-1), -1);
    expectMachineCheck(() => mem.read8(1.5), 1.5);
    expectMachineCheck(() => mem.read8(Number.NaN), -1);
    // The last byte is fine; a wider access starting there is not.
    expect(mem.read8(size - 1)).toBe(0);
    expectMachineCheck(() => mem.read16(size - 1), size - 1);
    expectMachineCheck(() => mem.read32(size - 1), size - 1);
    expectMachineCheck(() => mem.read32(size - 3), size - 3);
    expect(mem.read32(size - 4)).toBe(0);
    expectMachineCheck(() => mem.write32(size - 1, 0x01020304), size - 1);
    expectMachineCheck(() => mem.read64(size - 4));
    expectMachineCheck(() => mem.read64Big(size - 7));
    expectMachineCheck(() => mem.readBytes(size - 10, new Uint8Array(11)));
    expect(() => mem.readBytes(size - 10, new Uint8Array(10))).not.toThrow();
  });

  it('a refused wide write leaves memory unchanged (no partial store)', () => {
    const mem = small(2, 4096);
    const size = 8192;
    expectMachineCheck(() => mem.write64(size - 4, -1));
    expectMachineCheck(() => mem.write64Big(size - 4, -1n));
    expectMachineCheck(() => mem.write32(size - 2, 0xffffffff));
    expectMachineCheck(() => mem.write16(size - 1, 0xffff));
    expectMachineCheck(() => mem.writeBytes(size - 3, new Uint8Array([1, 2, 3, 4])));
    expect(mem.materializedFrames).toBe(0);
    expect(bytesAt(mem, size - 4, 4)).toEqual([0, 0, 0, 0]);
  });

  it('whole-frame operations refuse a frame number that is not installed', () => {
    const mem = small(2, 64);
    expectMachineCheck(() => mem.zeroFrameContents(2), 128);
    expectMachineCheck(() => mem.fillFrame(2, 0xaa));
    expectMachineCheck(() => mem.fillFrame(-1, 0));
    expectMachineCheck(() => mem.copyFrame(0, 2));
    expectMachineCheck(() => mem.copyFrame(2, 0));
    expectMachineCheck(() => mem.isFrameUntouched(1.5));
  });
});

describe('whole frames', () => {
  it('zeroFrameContents makes a frame read zero and releases its backing', () => {
    const mem = small(4, 64);
    mem.fillFrame(2, 0x33);
    expect(mem.materializedFrames).toBe(1);
    mem.zeroFrameContents(2);
    expect(mem.materializedFrames).toBe(0);
    expect(mem.hostBytes()).toBe(0);
    expect(mem.isFrameUntouched(2)).toBe(true);
    expect(bytesAt(mem, 128, 64).every((b) => b === 0)).toBe(true);
    mem.zeroFrameContents(3); // already untouched: nothing to release
    expect(mem.materializedFrames).toBe(0);
  });

  it('fillFrame fills every byte with the low 8 bits of the value; a zero fill releases', () => {
    const mem = small(4, 64);
    mem.fillFrame(1, 0xa5);
    expect(bytesAt(mem, 64, 64).every((b) => b === 0xa5)).toBe(true);
    expect(mem.read8(63)).toBe(0);
    expect(mem.read8(128)).toBe(0);
    mem.fillFrame(1, 0x1c3);
    expect(mem.read8(64 + 17)).toBe(0xc3);
    mem.fillFrame(1, 0x100); // low byte 0
    expect(mem.isFrameUntouched(1)).toBe(true);
    expect(mem.materializedFrames).toBe(0);
  });

  it('copyFrame copies contents, and the copy is independent of its source', () => {
    const mem = small(4, 64);
    for (let i = 0; i < 64; i++) mem.write8(64 + i, i + 1);
    mem.copyFrame(1, 3);
    expect(bytesAt(mem, 192, 64)).toEqual(Array.from({ length: 64 }, (_, i) => i + 1));
    mem.write8(64, 0xff);
    expect(mem.read8(192)).toBe(1);
    expect(mem.materializedFrames).toBe(2);

    // Copying an untouched frame over a written one makes it read zero and drops its backing.
    mem.copyFrame(0, 3);
    expect(mem.isFrameUntouched(3)).toBe(true);
    expect(bytesAt(mem, 192, 64).every((b) => b === 0)).toBe(true);
    expect(mem.materializedFrames).toBe(1);

    // Onto itself: unchanged.
    mem.copyFrame(1, 1);
    expect(mem.read8(64)).toBe(0xff);
    expect(mem.read8(65)).toBe(2);
  });
});
