/**
 * Physical memory: `frameCount` frames of `pageBytes` bytes, addressed by physical address.
 *
 * Backing is sparse. Every frame starts out pointing at one shared, read-only zero frame;
 * the first write to a frame gives it a private Uint8Array. Reading an untouched frame reads
 * zeros, and a machine of 16 GiB costs host memory only for the frames written.
 *
 *   frames[pfn] === zeroFrame   <=>  the frame holds only zeros and costs no host memory
 *   materializedFrames          ==   |{ pfn : frames[pfn] !== zeroFrame }|
 *   words[pfn] views the bytes of frames[pfn] as 32-bit words (on a little-endian host)
 *
 * Physical addresses are plain numbers (exact up to 2^53). An address at or past
 * `sizeBytes` is a machine check: a thrown MachineCheck, never a silent wraparound.
 * Multi-byte values are little-endian. An aligned 32-bit access on a little-endian host (every
 * host Node runs on in practice) is one read of the frame's word view; other accesses go byte
 * by byte. 64-bit values are numbers (exact up to 2^53; negative
 * safe integers are stored as two's complement); `read64Big` gives all 64 bits.
 */

export class MachineCheck extends Error {
  constructor(
    readonly physAddr: number,
    what: string,
  ) {
    super(`machine check: ${what} at physical address 0x${physAddr.toString(16)}`);
    this.name = 'MachineCheck';
  }
}

const TWO_32 = 4294967296;
/** Whether the host stores a Uint32Array's words little-endian (then word views read emulated words). */
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export class PhysicalMemory {
  readonly frameCount: number;
  readonly pageBytes: number;
  readonly pageShift: number;
  readonly sizeBytes: number;
  /** Frames that own private backing (have been written since boot or last release). */
  materializedFrames = 0;

  private readonly frames: Uint8Array[];
  /** 32-bit views of the same buffers (when `wordAccess`), for aligned word accesses. */
  private readonly words: Uint32Array[];
  private readonly zeroFrame: Uint8Array;
  private readonly zeroWords: Uint32Array;
  private readonly wordAccess: boolean;
  /**
   * Frame buffers ready for reuse: released frames' buffers, and fresh ones carved from
   * chunk allocations (allocating one small ArrayBuffer per frame costs microseconds; a chunk
   * of FRAMES_PER_CHUNK costs about the same once). Spares are zero-filled when taken.
   */
  private readonly spare: Uint8Array[] = [];
  private readonly spareWords: Uint32Array[] = [];
  /** Never-used buffers from chunk allocations (already zero). */
  private readonly fresh: Uint8Array[] = [];
  private readonly freshWords: Uint32Array[] = [];

  constructor(options: { frameCount: number; pageBytes: number }) {
    const { frameCount, pageBytes } = options;
    if (!Number.isInteger(pageBytes) || pageBytes < 1 || (pageBytes & (pageBytes - 1)) !== 0) {
      throw new RangeError(`PhysicalMemory: page size ${pageBytes} is not a power of two`);
    }
    if (!Number.isInteger(frameCount) || frameCount < 1 || frameCount > 0x7fffffff) {
      throw new RangeError(`PhysicalMemory: frame count ${frameCount} out of range`);
    }
    this.frameCount = frameCount;
    this.pageBytes = pageBytes;
    this.pageShift = Math.log2(pageBytes);
    this.sizeBytes = frameCount * pageBytes;
    this.zeroFrame = new Uint8Array(pageBytes);
    this.wordAccess = HOST_LITTLE_ENDIAN && pageBytes >= 4;
    this.zeroWords = this.wordsOf(this.zeroFrame);
    this.frames = new Array<Uint8Array>(frameCount).fill(this.zeroFrame);
    this.words = new Array<Uint32Array>(frameCount).fill(this.zeroWords);
  }

  // ---- frame-level access: the fast path used by the MMU (pfn and offset already checked) ----

  /** Byte `offset` of frame `pfn`. Caller guarantees pfn < frameCount and offset < pageBytes. */
  frameRead8(pfn: number, offset: number): number {
    return this.frames[pfn]![offset]!;
  }

  /** Store a byte into frame `pfn`. Caller guarantees the bounds. */
  frameWrite8(pfn: number, offset: number, value: number): void {
    let f = this.frames[pfn]!;
    if (f === this.zeroFrame) f = this.materialize(pfn);
    f[offset] = value;
  }

  /** Little-endian 32-bit load from within one frame (offset + 4 <= pageBytes). */
  frameRead32(pfn: number, offset: number): number {
    if ((offset & 3) === 0 && this.wordAccess) return this.words[pfn]![offset >>> 2]!;
    const f = this.frames[pfn]!;
    return (f[offset]! | (f[offset + 1]! << 8) | (f[offset + 2]! << 16) | (f[offset + 3]! << 24)) >>> 0;
  }

  frameWrite32(pfn: number, offset: number, value: number): void {
    let f = this.frames[pfn]!;
    if (f === this.zeroFrame) f = this.materialize(pfn);
    if ((offset & 3) === 0 && this.wordAccess) {
      this.words[pfn]![offset >>> 2] = value;
      return;
    }
    f[offset] = value;
    f[offset + 1] = value >>> 8;
    f[offset + 2] = value >>> 16;
    f[offset + 3] = value >>> 24;
  }

  /** Little-endian 64-bit load as a number (exact below 2^53) from within one frame (offset + 8 <= pageBytes). */
  frameRead64(pfn: number, offset: number): number {
    if ((offset & 3) === 0 && this.wordAccess) {
      const w = this.words[pfn]!;
      const i = offset >>> 2;
      return w[i + 1]! * TWO_32 + w[i]!;
    }
    return this.frameRead32(pfn, offset + 4) * TWO_32 + this.frameRead32(pfn, offset);
  }

  /** Store two 32-bit halves, least significant first, within one frame (offset + 8 <= pageBytes). */
  frameWrite64(pfn: number, offset: number, lo: number, hi: number): void {
    if (this.frames[pfn] === this.zeroFrame) this.materialize(pfn);
    if ((offset & 3) === 0 && this.wordAccess) {
      const w = this.words[pfn]!;
      const i = offset >>> 2;
      w[i] = lo;
      w[i + 1] = hi;
      return;
    }
    this.frameWrite32(pfn, offset, lo);
    this.frameWrite32(pfn, offset + 4, hi);
  }

  frameRead16(pfn: number, offset: number): number {
    const f = this.frames[pfn]!;
    return f[offset]! | (f[offset + 1]! << 8);
  }

  frameWrite16(pfn: number, offset: number, value: number): void {
    let f = this.frames[pfn]!;
    if (f === this.zeroFrame) f = this.materialize(pfn);
    f[offset] = value;
    f[offset + 1] = value >>> 8;
  }

  /** The backing array of a frame, for range copies. Read-only use: it may be the zero frame. */
  frameView(pfn: number): Uint8Array {
    return this.frames[pfn]!;
  }

  /** The backing array of a frame, materialized so it can be written. */
  frameViewForWrite(pfn: number): Uint8Array {
    const f = this.frames[pfn]!;
    return f === this.zeroFrame ? this.materialize(pfn) : f;
  }

  /** True when the frame has never been written (or was released) and costs no host memory. */
  isFrameUntouched(pfn: number): boolean {
    return this.frames[this.checkFrame(pfn)] === this.zeroFrame;
  }

  /** Make a frame read zeros again and drop its host backing. Real zeroing, at no copy cost. */
  zeroFrameContents(pfn: number): void {
    this.checkFrame(pfn);
    const f = this.frames[pfn]!;
    if (f !== this.zeroFrame) {
      const w = this.words[pfn]!;
      this.frames[pfn] = this.zeroFrame;
      this.words[pfn] = this.zeroWords;
      this.materializedFrames--;
      this.recycle(f, w);
    }
  }

  /** Fill a whole frame with one byte value (debug poisoning); 0 releases the backing. */
  fillFrame(pfn: number, value: number): void {
    if ((value & 0xff) === 0) {
      this.zeroFrameContents(pfn);
      return;
    }
    this.checkFrame(pfn);
    this.frameViewForWrite(pfn).fill(value);
  }

  /** Copy a whole frame onto another. */
  copyFrame(fromPfn: number, toPfn: number): void {
    this.checkFrame(fromPfn);
    this.checkFrame(toPfn);
    const src = this.frames[fromPfn]!;
    if (src === this.zeroFrame) {
      this.zeroFrameContents(toPfn);
      return;
    }
    this.frameViewForWrite(toPfn).set(src);
  }

  // ---- physical-address access (checked) ----

  read8(pa: number): number {
    this.checkRange(pa, 1);
    return this.frames[this.frameOf(pa)]![pa % this.pageBytes]!;
  }

  write8(pa: number, value: number): void {
    this.checkRange(pa, 1);
    this.frameWrite8(this.frameOf(pa), pa % this.pageBytes, value & 0xff);
  }

  read16(pa: number): number {
    return this.readLE(pa, 2);
  }

  write16(pa: number, value: number): void {
    this.writeLE(pa, 2, value);
  }

  read32(pa: number): number {
    return this.readLE(pa, 4);
  }

  write32(pa: number, value: number): void {
    this.writeLE(pa, 4, value);
  }

  /** 64-bit load as a number: exact when the value is below 2^53. */
  read64(pa: number): number {
    const lo = this.readLE(pa, 4);
    const hi = this.readLE(pa + 4, 4);
    return hi * TWO_32 + lo;
  }

  /** 64-bit store of a safe integer; negative values are stored in two's complement. */
  write64(pa: number, value: number): void {
    this.checkRange(pa, 8);
    this.writeLE(pa, 4, value >>> 0);
    this.writeLE(pa + 4, 4, Math.floor(value / TWO_32) >>> 0);
  }

  /** All 64 bits of a little-endian value (off the hot path: allocates a BigInt). */
  read64Big(pa: number): bigint {
    const lo = BigInt(this.readLE(pa, 4));
    const hi = BigInt(this.readLE(pa + 4, 4));
    return (hi << 32n) | lo;
  }

  write64Big(pa: number, value: bigint): void {
    this.checkRange(pa, 8);
    const v = BigInt.asUintN(64, value);
    this.writeLE(pa, 4, Number(v & 0xffffffffn));
    this.writeLE(pa + 4, 4, Number(v >> 32n));
  }

  /** Copy `length` bytes starting at `pa` into `dst` at `dstOffset`. */
  readBytes(pa: number, dst: Uint8Array, dstOffset = 0, length = dst.length - dstOffset): void {
    this.checkRange(pa, length);
    let done = 0;
    while (done < length) {
      const addr = pa + done;
      const off = addr % this.pageBytes;
      const n = Math.min(length - done, this.pageBytes - off);
      const f = this.frames[this.frameOf(addr)]!;
      dst.set(f.subarray(off, off + n), dstOffset + done);
      done += n;
    }
  }

  /** Copy `src` into physical memory at `pa`. */
  writeBytes(pa: number, src: Uint8Array): void {
    this.checkRange(pa, src.length);
    let done = 0;
    while (done < src.length) {
      const addr = pa + done;
      const off = addr % this.pageBytes;
      const n = Math.min(src.length - done, this.pageBytes - off);
      this.frameViewForWrite(this.frameOf(addr)).set(src.subarray(done, done + n), off);
      done += n;
    }
  }

  /** Host bytes spent on frame backing (the frames written so far). */
  hostBytes(): number {
    return this.materializedFrames * this.pageBytes;
  }

  // ---- private ----

  private frameOf(pa: number): number {
    return pa < 2147483648 ? pa >>> this.pageShift : Math.floor(pa / this.pageBytes);
  }

  private materialize(pfn: number): Uint8Array {
    let f = this.spare.pop();
    let w: Uint32Array;
    if (f !== undefined) {
      f.fill(0);
      w = this.spareWords.pop()!;
    } else {
      if (this.fresh.length === 0) this.carveChunk();
      f = this.fresh.pop()!;
      w = this.freshWords.pop()!;
    }
    this.frames[pfn] = f;
    this.words[pfn] = w;
    this.materializedFrames++;
    return f;
  }

  /** Allocate one chunk of frame buffers and keep them as fresh spares. */
  private carveChunk(): void {
    const n = Math.max(1, Math.min(64, Math.floor(262144 / this.pageBytes)));
    const chunk = new Uint8Array(n * this.pageBytes);
    for (let i = n - 1; i >= 0; i--) {
      const f = chunk.subarray(i * this.pageBytes, (i + 1) * this.pageBytes);
      this.fresh.push(f);
      this.freshWords.push(this.wordsOf(f));
    }
  }

  /** The 32-bit view of a frame buffer (an empty array when word access is off). */
  private wordsOf(f: Uint8Array): Uint32Array {
    return this.wordAccess ? new Uint32Array(f.buffer, f.byteOffset, f.length >>> 2) : new Uint32Array(0);
  }

  /** Keep a released buffer for reuse (bounded, so a big free returns host memory). */
  private recycle(f: Uint8Array, w: Uint32Array): void {
    if (this.spare.length < 4096) {
      this.spare.push(f);
      this.spareWords.push(w);
    }
  }

  private checkFrame(pfn: number): number {
    if (!Number.isInteger(pfn) || pfn < 0 || pfn >= this.frameCount) {
      throw new MachineCheck(pfn * this.pageBytes, `frame ${pfn} beyond the ${this.frameCount} installed`);
    }
    return pfn;
  }

  private checkRange(pa: number, length: number): void {
    if (!Number.isInteger(pa) || pa < 0 || pa + length > this.sizeBytes) {
      throw new MachineCheck(
        Number.isFinite(pa) ? pa : -1,
        `${length}-byte access beyond installed memory (0x${this.sizeBytes.toString(16)} bytes)`,
      );
    }
  }

  private readLE(pa: number, size: 2 | 4): number {
    this.checkRange(pa, size);
    const off = pa % this.pageBytes;
    const pfn = this.frameOf(pa);
    if (off + size <= this.pageBytes) {
      return size === 2 ? this.frameRead16(pfn, off) : this.frameRead32(pfn, off);
    }
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.read8(pa + i);
    return v;
  }

  private writeLE(pa: number, size: 2 | 4, value: number): void {
    this.checkRange(pa, size);
    const off = pa % this.pageBytes;
    const pfn = this.frameOf(pa);
    if (off + size <= this.pageBytes) {
      if (size === 2) this.frameWrite16(pfn, off, value);
      else this.frameWrite32(pfn, off, value);
      return;
    }
    let v = value >>> 0;
    for (let i = 0; i < size; i++) {
      this.write8(pa + i, v & 0xff);
      v >>>= 8;
    }
  }
}
