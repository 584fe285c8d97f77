import { gunzipSync, gzipSync } from 'node:zlib';

import { describe, expect, it } from 'vitest';

import { GEOIP_LIMITS } from '../../shared/geo/maxmind.js';
import { extractFile, gunzip, listEntries, TarError } from '../../shared/geo/tar.js';
import { writeTar } from '../support/fakeMaxMind.js';

/*
 * Archives made by GNU tar 1.34 (`tar --format=gnu|pax|ustar --owner=0 --group=0 --sort=name -czf`), so the
 * reader is checked against a real writer and not only against our own test writer:
 *   GeoLite2-City_20240102/{COPYRIGHT.txt ("copyright\n"), GeoLite2-City.mmdb ("MMDB-PLACEHOLDER\n")}
 * plus, in gnu and pax, a file with a 134-character name ("l" * 130 + ".txt", "long\n"), and in ustar a file
 * whose path needs the ustar prefix field ("d" * 80 + "/" + "f" * 60 + ".txt", "deep\n").
 */
const GNU_TAR =
  'H4sIAAAAAAAAA+3WQU+DMBQHcM5+in6BQV9pu6vKFmbSZcvixZOZukzithqsifv2Mm4QsYcxiPL/XUpakrZ5ee813ViTuY0YJZk7PgouJCcuoqBNvDBWqhwL9bH8Jqmk1IrKeYq5VAFTrZ6iweeHW+eMBbm17rf/fOt/VPpz/JPF8mF1l87uQ/d19rVPAdZSNsefRC3+iuQ4YLyNC/oMPP7P9v2YZ9tXd9X3SaAPDflfmQ73+5enM/bw5r+gWv5rQcj/Tsznk9vR0twk09nCTKYrlIFhCaMwujb2sDXZ4e1Ce/jyX8S68hbkRJrLgJkLnadi4PnfUP93vWvj4QleXcTf2/+5qvb/OD6VBPT/DuyK0o+eDwAAAAAAAAAAAADwv3wDSIt22AAoAAA=';
const PAX_TAR =
  'H4sIAAAAAAAAA+2Y32rCMBSHe+1T9AWs+XOS6IUXm4oOFEV2s6vRadGCrlIz0LdfJhOsWjuJixs9302LJ5Bo/M6vaVAbhZteFE6jdF3rRkk/1hGrtmK9fWWEAaGEebYQgwTYXQ3HV0IUeBQEgBR09znlgjLP31jP/AM+1jpMzVJczPUH4cQPdbyMmlQ1JFFS1mWgZB0AFGtUTHVyWoXv6r3XjthzXvnaTefYKS5Evv/mPus/cBCeL266ihz2/qdJoi+NK6off7l/Qs7+H4RCazh6GT91e8+B3lz8BXK5vv8LARz7vwtO+z8PoMFMhzcZcKb/m6raV++9dsSeHP/tpT+g0H/zsJf134xWnu/EyZL3/0my2qbxbK7R5lJSnP+ZEcFyOX27do7r819KivnvBMz/cpPjv730BxT6z+iR/0pQzH8nDAbtx+qo/9Dq9Ib9dmeMUpeL4vxfWFPkPzeH/Yz/nHKJ+e8EKpW/CvW8mfNHsN99W75OoBV8Tf1LuNj2wvwn4sh/EFxi/rtgkbzP0BAEQRAEQRAEKQefu6qwKwAoAAA=';
const USTAR_TAR =
  'H4sIAAAAAAAAA+3WwY6CMBAGYM77FL6Abltm4KxocBOMxnjxtFFB5WAwbE307ZflJgFxQ6NB/+9SUpow7WSG+lESxDpSXS/Wl28lFAkp1Kdlksi4zPmYKY75syQmcljm85JsYqvDRqOocPrRqzQLJU0SfWtd3fvi5lrCL8+/N50t51/+eNHT55vbvsffeThE1fmXqpD/bLVrdR5yiG+e/01yvKTxbq8/nh0JPENF/V9N9w6HcN3gG7X1r2Sh/l2WqP+HmEyGg+4s6Huj8TQYjuZoA+8lNKzs5vjv+59NovX3v/LGajZ2A7YN3Hs3rO3/gq/zz8KxRcv7f8WP1XS9Nd1+GEVH9HwAAAAAAAAAAAAAAIDX8QsxTuyyACgAAA==';

const DIR = 'GeoLite2-City_20240102';
const LONG = `${DIR}/${'l'.repeat(130)}.txt`;
const DEEP = `${DIR}/${'d'.repeat(80)}/${'f'.repeat(60)}.txt`;

const unpack = (base64: string) => gunzipSync(Buffer.from(base64, 'base64'));
const named = (wanted: string) => (name: string) => name === wanted;
const text = (b: Buffer | undefined) => b?.toString('utf8');

function tarError(fn: () => unknown): TarError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(TarError);
    return error as TarError;
  }
  throw new Error('expected a TarError');
}

describe('extractFile with archives written by GNU tar', () => {
  it('reads the GNU format, including a GNU long name (L entry)', () => {
    const tar = unpack(GNU_TAR);
    expect(text(extractFile(tar, named(`${DIR}/GeoLite2-City.mmdb`)))).toBe('MMDB-PLACEHOLDER\n');
    expect(text(extractFile(tar, named(`${DIR}/COPYRIGHT.txt`)))).toBe('copyright\n');
    expect(text(extractFile(tar, named(LONG)))).toBe('long\n');
    expect(listEntries(tar).map((e) => [e.name, e.type])).toEqual([
      [DIR, '5'],
      [`${DIR}/COPYRIGHT.txt`, '0'],
      [`${DIR}/GeoLite2-City.mmdb`, '0'],
      [LONG, '0'],
    ]);
  });

  it('reads the pax format (path in an x header)', () => {
    const tar = unpack(PAX_TAR);
    expect(text(extractFile(tar, named(LONG)))).toBe('long\n');
    expect(text(extractFile(tar, named(`${DIR}/GeoLite2-City.mmdb`)))).toBe('MMDB-PLACEHOLDER\n');
  });

  it('reads the ustar format, joining the prefix field and the name', () => {
    const tar = unpack(USTAR_TAR);
    expect(text(extractFile(tar, named(DEEP)))).toBe('deep\n');
    expect(listEntries(tar).map((e) => e.name)).toContain(DEEP);
  });

  it('returns undefined when no regular file matches (a directory never matches)', () => {
    const tar = unpack(GNU_TAR);
    expect(extractFile(tar, named(`${DIR}/GeoLite2-Country.mmdb`))).toBeUndefined();
    expect(extractFile(tar, named(DIR))).toBeUndefined();
  });
});

describe('extractFile with archives from the test writer', () => {
  it('round-trips binary contents of every size around the block boundary', () => {
    const sizes = [0, 1, 511, 512, 513, 1024, 5000];
    const files = sizes.map((n) => ({
      name: `d/f${n}`,
      data: Buffer.from(Array.from({ length: n }, (_, i) => i % 251)),
    }));
    const tar = writeTar([{ name: 'd/', type: '5' }, ...files]);
    for (const f of files) expect(extractFile(tar, named(f.name))?.equals(f.data)).toBe(true);
  });

  it('normalises ./ and repeated slashes before asking the predicate', () => {
    const tar = writeTar([{ name: './x//y.mmdb', data: 'y' }]);
    expect(text(extractFile(tar, named('x/y.mmdb')))).toBe('y');
  });

  it('writes and reads GNU long names and pax paths', () => {
    const long = `${'n'.repeat(150)}/${'m'.repeat(120)}.mmdb`;
    expect(text(extractFile(writeTar([{ name: long, data: 'gnu', gnuLongName: true }]), named(long)))).toBe(
      'gnu',
    );
    expect(text(extractFile(writeTar([{ name: long, data: 'pax', pax: { path: long } }]), named(long)))).toBe(
      'pax',
    );
  });

  it('never returns a symlink or other non-regular entry, even when its name matches', () => {
    const tar = writeTar([{ name: 'GeoLite2-City.mmdb', type: '2' }]);
    expect(extractFile(tar, named('GeoLite2-City.mmdb'))).toBeUndefined();
  });

  it('rejects two regular files matching the predicate (ambiguous)', () => {
    const tar = writeTar([
      { name: 'a/GeoLite2-City.mmdb', data: '1' },
      { name: 'b/GeoLite2-City.mmdb', data: '2' },
    ]);
    expect(tarError(() => extractFile(tar, (n) => n.endsWith('GeoLite2-City.mmdb'))).message).toMatch(
      /more than one file matches/,
    );
  });
});

describe('extractFile rejects unsafe and malformed archives', () => {
  it.each([
    '../GeoLite2-City.mmdb',
    'GeoLite2-City_20240102/../../etc/cron.d/evil',
    '/etc/passwd',
    'C:/Windows/evil.dll',
    'dir\\..\\evil',
    'bad\u0001name',
  ])('rejects the whole archive for the unsafe name %j', (name) => {
    const tar = writeTar([
      { name: 'ok.txt', data: 'fine' },
      { name, data: 'evil' },
    ]);
    // Even when the caller is after another file: an archive with such a name was not made by MaxMind.
    expect(tarError(() => extractFile(tar, named('ok.txt'))).message).toMatch(/unsafe entry name/);
  });

  it('rejects a path traversal hidden in a GNU long name or pax path', () => {
    const evil = `${'a'.repeat(120)}/../../../evil`;
    expect(() => extractFile(writeTar([{ name: evil, data: 'x', gnuLongName: true }]), () => true)).toThrow(
      /unsafe/,
    );
    expect(() =>
      extractFile(writeTar([{ name: 'x', data: 'x', pax: { path: '../x' } }]), () => true),
    ).toThrow(/unsafe/);
  });

  it('verifies every header checksum', () => {
    const tar = writeTar([
      { name: 'a.txt', data: 'a' },
      { name: 'b.txt', data: 'b' },
    ]);
    const damaged = Buffer.from(tar);
    damaged[1024 + 1] = 'X'.charCodeAt(0); // the second header's name: "b.txt" -> "bX.txt"-ish
    expect(tarError(() => extractFile(damaged, named('a.txt'))).message).toMatch(
      /header checksum mismatch at byte 1024/,
    );
    const badField = Buffer.from(tar);
    badField.write('9999999\0', 148, 'latin1'); // not octal
    expect(tarError(() => extractFile(badField, named('a.txt'))).message).toMatch(
      /checksum is not an octal number/,
    );
  });

  it('rejects truncation anywhere: inside data, inside a header, before the end marker', () => {
    const tar = writeTar([{ name: 'a.bin', data: Buffer.alloc(2000, 7) }]);
    // header (512) + data (2000 -> 2048) + end (1024)
    for (const cut of [600, 2512, 512 + 2048 + 100, 512 + 2048, 10]) {
      expect(tarError(() => extractFile(tar.subarray(0, cut), named('a.bin'))).message).toMatch(/truncated/);
    }
    expect(() => extractFile(Buffer.alloc(0), () => true)).toThrow(/truncated/);
  });

  it('rejects an entry whose size runs past the end of the archive', () => {
    const tar = Buffer.from(writeTar([{ name: 'a.bin', data: 'abc' }]));
    tar.write('00000077777\0', 124, 'latin1'); // size 32767
    let sum = 0;
    tar.write('        ', 148, 'latin1');
    for (const byte of tar.subarray(0, 512)) sum += byte;
    tar.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    expect(tarError(() => extractFile(tar, named('a.bin'))).message).toMatch(/needs 32767 bytes/);
  });

  it('rejects data after the end-of-archive marker and headers that are not ustar', () => {
    const tar = writeTar([{ name: 'a', data: 'a' }]);
    expect(() => extractFile(Buffer.concat([tar, Buffer.from('trailing')]), named('a'))).toThrow(
      /after the end-of-archive/,
    );
    const v7 = Buffer.from(tar);
    v7.fill(0, 257, 265); // no magic
    let sum = 0;
    v7.write('        ', 148, 'latin1');
    for (const byte of v7.subarray(0, 512)) sum += byte;
    v7.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    expect(() => extractFile(v7, named('a'))).toThrow(/neither ustar nor GNU/);
  });

  it('rejects random bytes', () => {
    const noise = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256));
    expect(() => extractFile(noise, () => true)).toThrow(TarError);
  });
});

describe('gunzip', () => {
  const gz = gzipSync(Buffer.alloc(100_000, 1));

  it('inflates within the limit', async () => {
    expect((await gunzip(gz, 100_000)).length).toBe(100_000);
  });

  it('refuses output beyond the limit (gzip bombs)', async () => {
    await expect(gunzip(gz, 99_999)).rejects.toThrow(/expands beyond 99999 bytes/);
  });

  it('rejects corrupt, truncated and non-gzip data', async () => {
    const corrupt = Buffer.from(gzipSync(Buffer.from('x'.repeat(10_000) + 'y'.repeat(10_000))));
    corrupt[corrupt.length - 6] = (corrupt[corrupt.length - 6] ?? 0) ^ 0xff; // the CRC
    await expect(gunzip(corrupt, 1 << 20)).rejects.toThrow(/corrupt gzip data/);
    await expect(gunzip(gz.subarray(0, gz.length - 10), 1 << 20)).rejects.toThrow(/corrupt gzip data/);
    await expect(gunzip(Buffer.from('plain text, not gzip at all'), 1 << 20)).rejects.toThrow(
      /not gzip data/,
    );
  });

  it('streams off the event loop: timers keep running while 96 MB inflate, and a bomb stops at the limit', async () => {
    const big = gzipSync(Buffer.alloc(96 * 1024 * 1024, 7));
    let turns = 0;
    let running = true;
    const spin = (): void => {
      turns++;
      if (running) setImmediate(spin);
    };
    setImmediate(spin);
    const out = await gunzip(big, 128 * 1024 * 1024);
    running = false;
    expect(out.length).toBe(96 * 1024 * 1024);
    expect(turns).toBeGreaterThan(10);
    // The GeoIP updater's limits are the real editions' (tens of MB), not 512 MiB / 1 GiB.
    expect(GEOIP_LIMITS.maxArchiveBytes).toBeLessThanOrEqual(128 * 1024 * 1024);
    await expect(gunzip(big, GEOIP_LIMITS.maxDatabaseBytes / 4)).rejects.toThrow(/expands beyond/);
  });
});
