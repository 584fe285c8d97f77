import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { embeddedDatabasePath } from '../../shared/geo/geolocator.js';
import { decodeMmdbValue, readMmdbMetadata } from '../../shared/geo/mmdb-metadata.js';

const CITY_DB = embeddedDatabasePath()!;

describe('readMmdbMetadata', () => {
  it('reads the City database metadata', async () => {
    const metadata = readMmdbMetadata(await readFile(CITY_DB));
    expect(metadata.databaseType).toBe('GeoLite2-City');
    expect(metadata.buildDate.toISOString()).toBe('2019-12-24T17:41:41.000Z');
    expect(metadata.binaryFormatMajorVersion).toBe(2);
    expect(metadata.ipVersion).toBe(6);
    expect(metadata.languages).toContain('en');
  });

  it('reads the Country database metadata', async () => {
    const metadata = readMmdbMetadata(await readFile(join(dirname(CITY_DB), 'GeoLite2-Country.mmdb')));
    expect(metadata.databaseType).toBe('GeoLite2-Country');
  });

  it('decodes a hand-built metadata map with every kind of value', () => {
    const marker = Buffer.concat([Buffer.from([0xab, 0xcd, 0xef]), Buffer.from('MaxMind.com')]);
    const str = (s: string) => Buffer.concat([Buffer.from([0x40 | s.length]), Buffer.from(s)]);
    const map = Buffer.concat([
      Buffer.from([0xe0 | 7]), // map with 7 entries
      str('database_type'),
      str('Test-City'),
      str('build_epoch'),
      Buffer.from([0x04, 0x02, 0x5e, 0x02, 0x4d, 0xd5]), // uint64 (extended type 9) in 4 bytes: 2019-12-24T17:41:41Z
      str('ip_version'),
      Buffer.from([0xa1, 0x06]), // uint16, 1 byte
      str('languages'),
      Buffer.from([0x02, 0x04]), // array (extended type 11) of 2
      str('en'),
      str('de'),
      str('flag'),
      Buffer.from([0x01, 0x07]), // boolean true (extended type 14, size 1)
      str('ratio'),
      Buffer.from([0x68, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]), // double 1.5
      str('signed'),
      Buffer.from([0x04, 0x01, 0xff, 0xff, 0xff, 0xfe]), // int32 -2 (extended type 8)
    ]);
    expect(decodeMmdbValue(map, 0)).toEqual([
      {
        database_type: 'Test-City',
        build_epoch: 1577209301,
        ip_version: 6,
        languages: ['en', 'de'],
        flag: true,
        ratio: 1.5,
        signed: -2,
      },
      map.length,
    ]);
    const metadata = readMmdbMetadata(Buffer.concat([Buffer.from('data section'), marker, map]));
    expect(metadata).toEqual({
      databaseType: 'Test-City',
      buildDate: new Date('2019-12-24T17:41:41.000Z'),
      binaryFormatMajorVersion: 0,
      ipVersion: 6,
      languages: ['en', 'de'],
    });
  });

  it('decodes long strings, floats, bytes and short int32s', () => {
    const long = 'x'.repeat(300); // size 285 + 2-byte extension
    expect(decodeMmdbValue(Buffer.concat([Buffer.from([0x5e, 0x00, 0x0f]), Buffer.from(long)]), 0)).toEqual([
      long,
      303,
    ]);
    const medium = 'y'.repeat(40); // size 29 + 1-byte extension
    expect(decodeMmdbValue(Buffer.concat([Buffer.from([0x5d, 11]), Buffer.from(medium)]), 0)[0]).toBe(medium);
    expect(decodeMmdbValue(Buffer.from([0x04, 0x08, 0x3f, 0xc0, 0, 0]), 0)).toEqual([1.5, 6]); // float
    expect(decodeMmdbValue(Buffer.from([0x82, 0xca, 0xfe]), 0)).toEqual([Buffer.from([0xca, 0xfe]), 3]); // bytes
    expect(decodeMmdbValue(Buffer.from([0x02, 0x01, 0xff, 0xfe]), 0)).toEqual([65534, 4]); // 2-byte int32 is positive
    expect(() => decodeMmdbValue(Buffer.from([0x20, 0]), 0)).toThrow('unexpected data type 1'); // pointer
  });

  it('rejects a file without the metadata marker, or with broken metadata', () => {
    expect(() => readMmdbMetadata(Buffer.from('hello'))).toThrow('no MaxMind DB metadata marker found');
    const marker = Buffer.concat([Buffer.from([0xab, 0xcd, 0xef]), Buffer.from('MaxMind.com')]);
    expect(() => readMmdbMetadata(Buffer.concat([marker, Buffer.from([0xe1])]))).toThrow(
      'unreadable MaxMind DB metadata',
    );
    expect(() => readMmdbMetadata(Buffer.concat([marker, Buffer.from([0x43, 0x61, 0x62, 0x63])]))).toThrow(
      'MaxMind DB metadata is not a map',
    );
    expect(() => readMmdbMetadata(Buffer.concat([marker, Buffer.from([0xe0])]))).toThrow(
      'lacks database_type or build_epoch',
    );
  });
});
