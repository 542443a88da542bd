/**
 * The object model of vmlab's managed heaps. Every object lives in the process's emulated
 * memory: a 16-byte header, its pointer fields (8 bytes each, 0 is null), then its data bytes,
 * the whole padded to OBJECT_ALIGN. A reference is the address of the header.
 *
 *   byte 0       2      3      4             8                      16
 *        +-------+------+------+-------------+----------------------+---------------+-------+
 *        | nptrs | type |  gc  |  dataBytes  |  aux (64 bits)       | ptr[0..nptrs) | data  |
 *        +-------+------+------+-------------+----------------------+---------------+-------+
 *
 *   nptrs      u16  pointer fields (0 .. MAX_FIELDS)
 *   type       u8   the program's tag for the object's type (the collectors never read it)
 *   gc         u8   the collector's bits (GC_* below; each collector says which it uses)
 *   dataBytes  u32  bytes of plain data after the fields
 *   aux        u64  the collector's word: a forwarding address (mark-compact, copying), a
 *                   reference count (refcount), an age (generational), 0 when unused
 *
 *   objectBytes(nptrs, dataBytes) = align16(HEADER_BYTES + FIELD_BYTES * nptrs + dataBytes)
 *
 * Collectors may keep a prefix of their own before the header (refcount's gc_next/gc_prev, as
 * CPython's PyGC_Head); the reference is still the header's address.
 */
import type { UserCpu } from '../../kernel/proc/uapi.ts';

export const HEADER_BYTES = 16;
export const FIELD_BYTES = 8;
export const OBJECT_ALIGN = 16;
export const MAX_FIELDS = 0xffff;
/** The largest data part of one object (1 GiB). */
export const MAX_DATA_BYTES = 1 << 30;
export const MAX_TYPE = 0xff;

/** Header field offsets. */
export const H_NPTRS = 0;
export const H_TYPE = 2;
export const H_GC = 3;
export const H_DATA_BYTES = 4;
export const H_AUX = 8;

/** The gc byte. Which bits a collector uses is its own business; these are the shared names. */
/** Marked (black, or grey-or-black in a collector that keeps grey apart). */
export const GC_MARK = 0x01;
/** Grey: marked and on the grey stack, fields not yet scanned. */
export const GC_GREY = 0x02;
/** The aux word holds the object's new address (mark-compact, copying). */
export const GC_FORWARDED = 0x04;
/** The object is in a remembered set (generational). */
export const GC_REMEMBERED = 0x08;
/** Age in minor collections survived (generational): bits 4-6. */
export const GC_AGE_SHIFT = 4;
export const GC_AGE_MASK = 0x70;
/** A free slot or chunk, not an object (span and pool collectors). */
export const GC_FREE = 0x80;

/** Bytes an object with `nptrs` fields and `dataBytes` of data occupies (header included). */
export function objectBytes(nptrs: number, dataBytes: number): number {
  return (HEADER_BYTES + FIELD_BYTES * nptrs + dataBytes + OBJECT_ALIGN - 1) & ~(OBJECT_ALIGN - 1);
}

/** Address of field `i` of the object at `obj`. */
export function fieldAddress(obj: number, i: number): number {
  return obj + HEADER_BYTES + FIELD_BYTES * i;
}

/** Address of the data part of the object at `obj`, which has `nptrs` fields. */
export function dataAddress(obj: number, nptrs: number): number {
  return obj + HEADER_BYTES + FIELD_BYTES * nptrs;
}

/** Write a fresh header: the gc byte and aux word 0. Fields and data are not touched. */
export function writeHeader(cpu: UserCpu, obj: number, nptrs: number, type: number, dataBytes: number): void {
  cpu.store32(obj, nptrs | (type << 16));
  cpu.store32(obj + H_DATA_BYTES, dataBytes);
  cpu.store64(obj + H_AUX, 0);
}

export function nptrsOf(cpu: UserCpu, obj: number): number {
  return cpu.load16(obj + H_NPTRS);
}

export function typeOf(cpu: UserCpu, obj: number): number {
  return cpu.load8(obj + H_TYPE);
}

export function gcBitsOf(cpu: UserCpu, obj: number): number {
  return cpu.load8(obj + H_GC);
}

export function setGcBits(cpu: UserCpu, obj: number, bits: number): void {
  cpu.store8(obj + H_GC, bits);
}

export function dataBytesOf(cpu: UserCpu, obj: number): number {
  return cpu.load32(obj + H_DATA_BYTES);
}

export function auxOf(cpu: UserCpu, obj: number): number {
  return cpu.load64(obj + H_AUX);
}

export function setAux(cpu: UserCpu, obj: number, value: number): void {
  cpu.store64(obj + H_AUX, value);
}

/** Bytes the object at `obj` occupies, from its header (two loads). */
export function sizeOf(cpu: UserCpu, obj: number): number {
  return objectBytes(cpu.load16(obj + H_NPTRS), cpu.load32(obj + H_DATA_BYTES));
}

/** Load field `i` of `obj` (no checks). */
export function loadField(cpu: UserCpu, obj: number, i: number): number {
  return cpu.load64(obj + HEADER_BYTES + FIELD_BYTES * i);
}

/** Store `ref` into field `i` of `obj` (no checks, no barrier). */
export function storeField(cpu: UserCpu, obj: number, i: number, ref: number): void {
  cpu.store64(obj + HEADER_BYTES + FIELD_BYTES * i, ref);
}
