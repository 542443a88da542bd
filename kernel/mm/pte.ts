/**
 * The kernel's view of page-table entries, for any paging format: named helpers over the
 * format's bit layout (isPresent, pfnOf, isDirty, withWritable …) so that mm code never
 * touches raw masks.
 *
 * An entry is two unsigned 32-bit halves (lo, hi). Helpers that produce an entry return `lo`
 * and leave `hi` in the codec's `hi` field, so nothing is allocated.
 *
 * Entry states:
 *   none      lo = hi = 0: nothing mapped here (demand-zero or file fault on first touch)
 *   present   present bit set: a frame with its permissions
 *   swap      present clear, tag SWAP: the page is in swap slot `payload`
 *   protnone  present clear, tag PROTNONE: a frame kept mapped under PROT_NONE (`payload` = pfn)
 * Non-present entries carry (payload << 2 | tag) spread over every bit but the present bit,
 * so they fit any format (a 1-byte entry holds a 5-bit payload).
 */
import { entryPfn, type FlagMask, type PagingFormat } from '../hw/paging/format.ts';

export const NP_SWAP = 1;
export const NP_PROTNONE = 2;

/** Permission bits the kernel asks for in a present entry. */
export const PTE_READ = 1;
export const PTE_WRITE = 2;
export const PTE_EXEC = 4;

export class PteCodec {
  readonly fmt: PagingFormat;
  /** The high half of the last entry a helper returned. */
  hi = 0;
  /** Largest payload a non-present entry can hold. */
  readonly maxPayload: number;
  private readonly m: PagingFormat['mask'];
  private readonly npBits: number[];

  /** 2^pfnShift (2^(pfnShift - 32) when the field starts in hi), and 2^(the field's bits in lo). */
  private readonly pfnShift: number;
  private readonly pfnScale: number;
  private readonly pfnLoSpan: number;

  constructor(fmt: PagingFormat) {
    this.fmt = fmt;
    this.m = fmt.mask;
    this.pfnShift = fmt.pfnShift;
    this.pfnScale = fmt.pfnShift >= 32 ? 2 ** (fmt.pfnShift - 32) : 2 ** fmt.pfnShift;
    this.pfnLoSpan = 2 ** Math.min(fmt.pfnWidth, 32 - Math.min(fmt.pfnShift, 32));
    const presentBit = Math.log2(fmt.mask.present.lo || fmt.mask.present.hi * 4294967296);
    this.npBits = [];
    for (let b = 0; b < fmt.entryBytes * 8; b++) if (b !== presentBit) this.npBits.push(b);
    this.maxPayload = 2 ** Math.min(50, this.npBits.length - 2) - 1;
  }

  isNone(lo: number, hi: number): boolean {
    return lo === 0 && hi === 0;
  }

  isPresent(lo: number, hi: number): boolean {
    return ((lo & this.m.present.lo) | (hi & this.m.present.hi)) !== 0;
  }

  pfnOf(lo: number, hi: number): number {
    return entryPfn(this.fmt, lo, hi);
  }

  isWritable(lo: number, hi: number): boolean {
    return !this.fmt.has.writable || test(this.m.writable, lo, hi);
  }

  isDirty(lo: number, hi: number): boolean {
    return this.fmt.has.dirty && test(this.m.dirty, lo, hi);
  }

  isAccessed(lo: number, hi: number): boolean {
    return this.fmt.has.accessed && test(this.m.accessed, lo, hi);
  }

  /**
   * A present leaf entry for frame `pfn` with `perm` (PTE_* bits), user-accessible, accessed
   * and dirty bits as given. Returns lo; hi in `this.hi`.
   */
  leaf(pfn: number, perm: number, options?: { dirty?: boolean; accessed?: boolean }): number {
    const f = this.fmt;
    let lo: number;
    let hi: number;
    if (this.pfnShift >= 32) {
      lo = 0;
      hi = (pfn * this.pfnScale) >>> 0;
    } else {
      // The frame number's low pfnLoWidth bits go to lo at pfnShift, the rest to hi.
      const loPart = pfn % this.pfnLoSpan;
      lo = (loPart * this.pfnScale) >>> 0;
      hi = ((pfn - loPart) / this.pfnLoSpan) >>> 0;
    }
    const m = this.m;
    lo |= m.present.lo;
    hi |= m.present.hi;
    if (f.has.user) {
      lo |= m.user.lo;
      hi |= m.user.hi;
    }
    if (f.has.readable && (perm & (PTE_READ | PTE_WRITE)) !== 0) {
      lo |= m.readable.lo;
      hi |= m.readable.hi;
    }
    if (f.has.writable && (perm & PTE_WRITE) !== 0) {
      lo |= m.writable.lo;
      hi |= m.writable.hi;
    }
    if (f.has.execute && (perm & PTE_EXEC) !== 0) {
      lo |= m.execute.lo;
      hi |= m.execute.hi;
    }
    if (f.has.noExecute && (perm & PTE_EXEC) === 0) {
      lo |= m.noExecute.lo;
      hi |= m.noExecute.hi;
    }
    if (options !== undefined && options.dirty === true && f.has.dirty) {
      lo |= m.dirty.lo;
      hi |= m.dirty.hi;
    }
    if (options !== undefined && options.accessed === true && f.has.accessed) {
      lo |= m.accessed.lo;
      hi |= m.accessed.hi;
    }
    this.hi = hi >>> 0;
    return lo >>> 0;
  }

  /** A pointer (non-leaf) entry to the table in frame `pfn`. */
  pointer(pfn: number): number {
    const f = this.fmt;
    if (f.permissionScope === 'leaf-only') {
      const lo = this.leaf(pfn, 0);
      // strip every permission: only valid + frame number
      const strip = (mask: FlagMask, l: number, h: number): [number, number] => [
        (l & ~mask.lo) >>> 0,
        (h & ~mask.hi) >>> 0,
      ];
      let l = lo;
      let h = this.hi;
      for (const flag of [
        'readable',
        'writable',
        'execute',
        'user',
        'global',
        'accessed',
        'dirty',
      ] as const) {
        [l, h] = strip(this.m[flag], l, h);
      }
      this.hi = h;
      return l;
    }
    return this.leaf(pfn, PTE_READ | PTE_WRITE | PTE_EXEC);
  }

  /** `lo` with the writable bit set or cleared (hi: `this.hi`, unchanged from the argument). */
  withWritable(lo: number, hi: number, writable: boolean): number {
    return this.withFlag(this.m.writable, lo, hi, writable);
  }

  withDirty(lo: number, hi: number, dirty: boolean): number {
    return this.withFlag(this.m.dirty, lo, hi, dirty);
  }

  withAccessed(lo: number, hi: number, accessed: boolean): number {
    return this.withFlag(this.m.accessed, lo, hi, accessed);
  }

  /** A non-present entry of kind `tag` carrying `payload`. */
  nonPresent(tag: number, payload: number): number {
    if (!Number.isInteger(payload) || payload < 0 || payload > this.maxPayload) {
      throw new RangeError(`pteNonPresent: payload ${payload} does not fit ${this.fmt.name}'s entries`);
    }
    let v = payload * 4 + tag;
    let lo = 0;
    let hi = 0;
    for (const b of this.npBits) {
      if (v === 0) break;
      if (v % 2 === 1) {
        if (b < 32) lo |= 1 << b;
        else hi |= 1 << (b - 32);
      }
      v = Math.floor(v / 2);
    }
    this.hi = hi >>> 0;
    return lo >>> 0;
  }

  /** Tag of a non-present, non-none entry (NP_SWAP or NP_PROTNONE). */
  nonPresentTag(lo: number, hi: number): number {
    return this.nonPresentValue(lo, hi) % 4;
  }

  /** Payload of a non-present entry (swap slot or frame). */
  nonPresentPayload(lo: number, hi: number): number {
    return Math.floor(this.nonPresentValue(lo, hi) / 4);
  }

  private nonPresentValue(lo: number, hi: number): number {
    let v = 0;
    let scale = 1;
    for (const b of this.npBits) {
      const bit = b < 32 ? (lo >>> b) & 1 : (hi >>> (b - 32)) & 1;
      v += bit * scale;
      scale *= 2;
      if (scale > 2 ** 52) break;
    }
    return v;
  }

  private withFlag(mask: FlagMask, lo: number, hi: number, on: boolean): number {
    if (on) {
      this.hi = (hi | mask.hi) >>> 0;
      return (lo | mask.lo) >>> 0;
    }
    this.hi = (hi & ~mask.hi) >>> 0;
    return (lo & ~mask.lo) >>> 0;
  }
}

function test(mask: FlagMask, lo: number, hi: number): boolean {
  return ((lo & mask.lo) | (hi & mask.hi)) !== 0;
}
