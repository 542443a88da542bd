/**
 * Physical memory images, so that a textbook exercise can be set up byte for byte.
 *
 * Two forms:
 * - raw binary: the file's bytes are physical memory from address 0 (shorter files leave the
 *   rest zero; longer ones are refused);
 * - text: lines `page N: b0 b1 b2 …` giving the hex bytes of frame N from offset 0 (as in
 *   the page dumps of OSTEP's paging-multilevel-translate exercise). Blank lines and `#`
 *   comments are ignored, and so are the other lines of a generated exercise (`vmlab translate
 *   -g` output: ARG lines, the PDBR line, the questions and worked answers), so an exercise can
 *   be fed back with -i; bytes may be written `7f` or `0x7f`; a page may list fewer bytes than a
 *   page holds (the rest is zero) but not more.
 *
 * Form 'auto' reads a file as text when its first meaningful line starts with `page`.
 */
import { readFileSync } from 'node:fs';
import type { PhysicalMemory } from '../hw/physmem.ts';
import { InputError } from './configfile.ts';

export type ImageForm = 'auto' | 'raw' | 'text';

/** Load an image into `mem`. Throws InputError naming the file, line and field on bad input. */
export function loadMemoryImage(
  mem: PhysicalMemory,
  path: string,
  form: ImageForm = 'auto',
): { form: 'raw' | 'text'; frames: number } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new InputError(
      `${path}: cannot read the memory image: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  const chosen = form === 'auto' ? (looksLikeText(bytes) ? 'text' : 'raw') : form;
  if (chosen === 'raw') {
    if (bytes.length > mem.sizeBytes) {
      throw new InputError(
        `${path}: raw image of ${bytes.length} bytes exceeds physical memory of ${mem.sizeBytes} bytes`,
      );
    }
    mem.writeBytes(0, bytes);
    return { form: 'raw', frames: Math.ceil(bytes.length / mem.pageBytes) };
  }
  return { form: 'text', frames: loadTextImage(mem, path, bytes.toString('utf8')) };
}

/** Parse `page N: …` lines into `mem`; returns the number of pages given. */
export function loadTextImage(mem: PhysicalMemory, path: string, text: string): number {
  const seen = new Set<number>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/#.*/, '').trim();
    if (line === '' || EXERCISE_LINE.test(line)) continue;
    const where = `${path}:${i + 1}`;
    const m = /^page\s+(\S+)\s*:(.*)$/i.exec(line);
    if (!m) throw new InputError(`${where}: expected 'page N: b0 b1 …', got '${lines[i]!.trim()}'`);
    const frame = parseNumber(m[1]!);
    if (frame === undefined) throw new InputError(`${where}: page number: '${m[1]}' is not a number`);
    if (frame >= mem.frameCount) {
      throw new InputError(
        `${where}: page number: ${frame} is beyond the ${mem.frameCount} frames of this machine`,
      );
    }
    if (seen.has(frame)) throw new InputError(`${where}: page number: page ${frame} is given twice`);
    seen.add(frame);
    const tokens = m[2]!.split(/[\s,]+/).filter((t) => t !== '');
    if (tokens.length > mem.pageBytes) {
      throw new InputError(`${where}: bytes: ${tokens.length} bytes given for a ${mem.pageBytes}-byte page`);
    }
    const data = new Uint8Array(tokens.length);
    tokens.forEach((tok, j) => {
      const t = tok.replace(/^0x/i, '');
      if (!/^[0-9a-f]{1,2}$/i.test(t))
        throw new InputError(`${where}: byte ${j}: '${tok}' is not a hex byte`);
      data[j] = Number.parseInt(t, 16);
    });
    mem.writeBytes(frame * mem.pageBytes, data);
  }
  return seen.size;
}

/** The lines of a generated translation exercise that are not page dumps (exercises.ts). */
const EXERCISE_LINE = /^(ARG\s|PDBR:|Virtual Address\s|VA\s|split:|L\d+:|-->)/;

/** True when the first line that is not blank, a comment or an exercise's own starts with `page`. */
function looksLikeText(bytes: Buffer): boolean {
  let start = 0;
  while (start < bytes.length) {
    const newline = bytes.indexOf(0x0a, start);
    const end = newline < 0 ? bytes.length : newline;
    const line = bytes
      .subarray(start, Math.min(end, start + 4096))
      .toString('latin1')
      .replace(/#.*/, '')
      .trim();
    if (line !== '' && !EXERCISE_LINE.test(line)) return /^page\s/i.test(line);
    start = end + 1;
  }
  return false;
}

function parseNumber(text: string): number | undefined {
  if (/^0x[0-9a-f]+$/i.test(text)) return Number.parseInt(text.slice(2), 16);
  if (/^\d+$/.test(text)) return Number.parseInt(text, 10);
  return undefined;
}
