/**
 * The program image format (vmlab's binfmt): the file that execve maps a program from. Every
 * program (a built-in, a user TypeScript file, a workload script) has one, written once per
 * machine into the kernel's image folder, so that its text is shared through the page cache by
 * every process running it, demand-faulted from the file and dropped (not swapped) by reclaim.
 *
 *   offset 0                      text segment, textFileBytes (whole pages), mapped r-x private
 *     0..63                       header: magic "\x7fVMX", u32 version, u32 page size,
 *                                 u32 textBytes, u32 dataBytes, u32 bssBytes, the path (NUL-ended)
 *     64..                        the program's "instructions" (seeded bytes, never zero)
 *   offset textFileBytes          data segment, dataBytes, mapped rw- private (copy on write)
 *   (bss and the heap are anonymous: they are not in the file)
 *
 * The bytes are a pure function of the image's path and sizes and the page size, so a run is
 * the same on every host. Data bytes are never zero, so no 8-byte word of initialised data
 * can look like a user pointer to a conservative scan.
 */
import type { ProgramImage } from './uapi.ts';

export const IMAGE_MAGIC = [0x7f, 0x56, 0x4d, 0x58]; // "\x7fVMX"
export const IMAGE_VERSION = 1;
export const IMAGE_HEADER_BYTES = 64;

/** Where an image's segments lie in its file, in bytes. */
export interface ImageLayout {
  /** Bytes of the text segment in the file (textBytes rounded up to whole pages, at least one). */
  textFileBytes: number;
  /** File offset of the data segment (== textFileBytes, a page multiple). */
  dataOffset: number;
  /** Total file size. */
  fileBytes: number;
}

export function imageLayout(
  image: Pick<ProgramImage, 'textBytes' | 'dataBytes'>,
  pageBytes: number,
): ImageLayout {
  const textFileBytes = Math.ceil(Math.max(image.textBytes, 1) / pageBytes) * pageBytes;
  return { textFileBytes, dataOffset: textFileBytes, fileBytes: textFileBytes + image.dataBytes };
}

/** The image file's bytes for `image` on a machine with `pageBytes` pages. */
export function buildImageFile(image: ProgramImage, pageBytes: number): Uint8Array {
  const layout = imageLayout(image, pageBytes);
  const out = new Uint8Array(layout.fileBytes);
  let x = fnv1a(`${image.path}:${image.textBytes}:${image.dataBytes}:${image.bssBytes}`);
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = 1 + ((x >>> 0) % 255);
  }
  const header = new DataView(out.buffer, 0, Math.min(IMAGE_HEADER_BYTES, out.length));
  if (out.length >= IMAGE_HEADER_BYTES) {
    out.set(IMAGE_MAGIC, 0);
    header.setUint32(4, IMAGE_VERSION, true);
    header.setUint32(8, pageBytes, true);
    header.setUint32(12, image.textBytes, true);
    header.setUint32(16, image.dataBytes, true);
    header.setUint32(20, image.bssBytes, true);
    const path = new TextEncoder().encode(image.path).subarray(0, IMAGE_HEADER_BYTES - 25);
    out.set(path, 24);
    out.fill(0, 24 + path.length, IMAGE_HEADER_BYTES);
  }
  return out;
}

/** 32-bit FNV-1a of a string (a seed that depends on the image only). */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0 || 1;
}
