/**
 * A small, strict reader of tar archives, enough to take one file out of MaxMind's database downloads
 * (`GeoLite2-City_YYYYMMDD/GeoLite2-City.mmdb` in a .tar.gz) without a dependency.
 *
 * Strict because the archive comes from the network: every header's checksum is verified, every size and
 * offset is checked against the buffer, the archive must end with the end-of-archive marker, and a name that
 * could escape a directory (absolute, `..`, backslashes, NUL) makes the whole archive invalid rather than
 * being skipped. Understood: POSIX ustar (with its name prefix), GNU tar (long names `L`, long link names
 * `K`, base-256 sizes) and pax extended headers (`x` path and size; `g` ignored). Only regular files are
 * ever returned; directories, links and devices are passed over.
 */
import { createGunzip } from 'node:zlib';

const BLOCK = 512;

/** Raised for anything that is not a well-formed tar archive; the message says what and where. */
export class TarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TarError';
  }
}

/** One entry as the reader sees it, after long-name and pax headers are applied. */
export interface TarEntry {
  name: string;
  /** The ustar type flag: '0' regular file, '5' directory, '2' symlink, … ('\0' is reported as '0'). */
  type: string;
  size: number;
}

/**
 * Returns the contents of the one regular file whose (normalised) name satisfies `predicate`, or undefined
 * when there is none. The whole archive is checked, so a corrupt or truncated tail is an error even after the
 * file was found. Throws a {@link TarError} when the archive is malformed, a name is unsafe, or more than one
 * regular file matches (ambiguous). The returned Buffer shares memory with `tarBuffer`.
 */
export function extractFile(tarBuffer: Buffer, predicate: (name: string) => boolean): Buffer | undefined {
  let found: { name: string; data: Buffer } | undefined;
  for (const { entry, data } of readEntries(tarBuffer)) {
    if (entry.type !== '0' || !predicate(entry.name)) continue;
    if (found !== undefined) {
      throw new TarError(`more than one file matches: "${found.name}" and "${entry.name}"`);
    }
    found = { name: entry.name, data };
  }
  return found?.data;
}

/** Every entry of the archive (validated as {@link extractFile} does), without their contents. */
export function listEntries(tarBuffer: Buffer): TarEntry[] {
  return [...readEntries(tarBuffer)].map(({ entry }) => entry);
}

/** Compressed bytes handed to zlib at a time: the event loop runs between pieces. */
const GUNZIP_SLICE = 1024 * 1024;

/**
 * Gunzips a .tar.gz (or any gzip data), streamed through zlib on the thread pool in slices — never on the event
 * loop, so a timer or an HTTP request of the same worker is not held up — and stopped as soon as the output
 * passes `maxBytes`, so a hostile archive cannot exhaust memory. Rejects with a {@link TarError} when the data is
 * not gzip, is corrupt or truncated, or is too large.
 */
export async function gunzip(gz: Buffer, maxBytes: number): Promise<Buffer> {
  if (gz.length < 18 || gz[0] !== 0x1f || gz[1] !== 0x8b) throw new TarError('not gzip data');
  const z = createGunzip();
  const out: Buffer[] = [];
  let total = 0;
  const done = new Promise<void>((resolve, reject) => {
    z.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total > maxBytes) {
        z.destroy();
        reject(new TarError(`gzip data expands beyond ${maxBytes} bytes`));
        return;
      }
      out.push(chunk);
    });
    z.on('end', resolve);
    z.on('error', (error) => reject(new TarError(`corrupt gzip data (${error.message})`)));
  });
  done.catch(() => undefined); // observed below; keeps an early failure from being reported as unhandled
  for (let i = 0; i < gz.length && !z.destroyed; i += GUNZIP_SLICE) {
    if (!z.write(gz.subarray(i, i + GUNZIP_SLICE))) {
      await Promise.race([new Promise((r) => z.once('drain', r)), done]);
    }
  }
  if (!z.destroyed) z.end();
  await done;
  return Buffer.concat(out, total);
}

function* readEntries(buffer: Buffer): Generator<{ entry: TarEntry; data: Buffer }> {
  let offset = 0;
  let longName: string | undefined;
  let pax: { path?: string; size?: number } = {};
  for (;;) {
    if (offset + BLOCK > buffer.length) {
      throw new TarError(`truncated archive: no end-of-archive marker (header expected at byte ${offset})`);
    }
    const header = buffer.subarray(offset, offset + BLOCK);
    if (isZero(header)) {
      // End of archive. Writers add a second zero block and pad to a record; anything else after is damage.
      if (!isZero(buffer.subarray(offset))) {
        throw new TarError(`data after the end-of-archive marker at byte ${offset}`);
      }
      if (longName !== undefined || pax.path !== undefined || pax.size !== undefined) {
        throw new TarError('archive ends after a long-name or pax header without its entry');
      }
      return;
    }
    verifyChecksum(header, offset);
    const magic = header.toString('latin1', 257, 263);
    const version = header.toString('latin1', 263, 265);
    const ustar = magic === 'ustar\0' && version === '00';
    const gnu = magic === 'ustar ' && version === ' \0';
    if (!ustar && !gnu) throw new TarError(`header at byte ${offset} is neither ustar nor GNU tar`);

    const typeByte = header.toString('latin1', 156, 157);
    const type = typeByte === '\0' ? '0' : typeByte;
    const headerSize = readNumber(header, 124, 12, 'size', offset);
    const size = pax.size ?? headerSize;
    const dataStart = offset + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > buffer.length) {
      throw new TarError(
        `truncated archive: entry at byte ${offset} needs ${size} bytes, ${buffer.length - dataStart} left`,
      );
    }
    const data = buffer.subarray(dataStart, dataEnd);
    const next = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    if (next > buffer.length) throw new TarError(`truncated archive: padding of the entry at byte ${offset}`);
    offset = next;

    switch (type) {
      case 'L': // GNU long name: the data is the next entry's name
        if (longName !== undefined) throw new TarError(`two long-name headers in a row at byte ${dataStart}`);
        longName = cString(data);
        continue;
      case 'K': // GNU long link name: links are never extracted
        continue;
      case 'x': // pax extended header for the next entry
        pax = parsePax(data, dataStart);
        continue;
      case 'g': // pax global header: nothing in it matters here
        continue;
    }

    let name: string;
    if (pax.path !== undefined) name = pax.path;
    else if (longName !== undefined) name = longName;
    else {
      const base = cString(header.subarray(0, 100));
      const prefix = ustar ? cString(header.subarray(345, 500)) : '';
      name = prefix === '' ? base : `${prefix}/${base}`;
    }
    longName = undefined;
    pax = {};
    yield { entry: { name: safeName(name, type), type, size }, data };
  }
}

function isZero(block: Buffer): boolean {
  for (const byte of block) if (byte !== 0) return false;
  return true;
}

/** The checksum is the sum of the header's bytes with the checksum field itself read as eight spaces. */
function verifyChecksum(header: Buffer, offset: number): void {
  const stored = readNumber(header, 148, 8, 'checksum', offset);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (header[i] ?? 0);
    unsigned += byte;
    signed += byte >= 0x80 ? byte - 0x100 : byte;
  }
  // POSIX says unsigned; some old writers summed signed chars, and readers (GNU tar too) accept both.
  if (stored !== unsigned && stored !== signed) {
    throw new TarError(
      `header checksum mismatch at byte ${offset} (stored ${stored}, computed ${unsigned}): corrupt archive`,
    );
  }
}

/** An octal field (NUL or space terminated, maybe space padded) or a GNU base-256 number. */
function readNumber(header: Buffer, start: number, length: number, what: string, offset: number): number {
  const field = header.subarray(start, start + length);
  const first = field[0] ?? 0;
  if (first === 0x80) {
    let value = 0;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    if (!Number.isSafeInteger(value)) throw new TarError(`${what} too large in the header at byte ${offset}`);
    return value;
  }
  if (first >= 0x80) throw new TarError(`negative or unsupported ${what} in the header at byte ${offset}`);
  const text = field
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');
  if (!/^[0-7]+$/.test(text))
    throw new TarError(`${what} is not an octal number in the header at byte ${offset}`);
  return parseInt(text, 8);
}

/** A NUL-terminated (or full-width) field as UTF-8. */
function cString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.toString('utf8', 0, end < 0 ? field.length : end);
}

/** Records `"<length> <key>=<value>\n"`; the length counts the whole record. */
function parsePax(data: Buffer, at: number): { path?: string; size?: number } {
  const out: { path?: string; size?: number } = {};
  let i = 0;
  while (i < data.length) {
    const space = data.indexOf(0x20, i);
    const lengthText = space < 0 ? '' : data.toString('latin1', i, space);
    const length = /^[1-9][0-9]{0,9}$/.test(lengthText) ? Number(lengthText) : NaN;
    if (!(length > 0) || i + length > data.length || data[i + length - 1] !== 0x0a) {
      throw new TarError(`malformed pax header at byte ${at + i}`);
    }
    const record = data.toString('utf8', space + 1, i + length - 1);
    const eq = record.indexOf('=');
    if (eq <= 0) throw new TarError(`malformed pax record at byte ${at + i}`);
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === 'path') out.path = value;
    else if (key === 'size') {
      if (!/^[0-9]{1,15}$/.test(value)) throw new TarError(`malformed pax size at byte ${at + i}`);
      out.size = Number(value);
    }
    i += length;
  }
  return out;
}

/**
 * Normalises `./a//b/` to `a/b` and rejects names that are empty, absolute, contain `..` segments,
 * backslashes, control characters or a drive letter: such an archive was not made by MaxMind.
 */
function safeName(raw: string, type: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\0-\x1f\\]/.test(raw) || raw.startsWith('/') || /^[A-Za-z]:/.test(raw)) {
    throw new TarError(`unsafe entry name ${JSON.stringify(raw)}`);
  }
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new TarError(`unsafe entry name ${JSON.stringify(raw)} (path traversal)`);
  if (parts.length === 0) {
    if (type === '5') return '.';
    throw new TarError(`empty entry name ${JSON.stringify(raw)}`);
  }
  return parts.join('/');
}
