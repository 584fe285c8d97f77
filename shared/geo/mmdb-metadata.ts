/**
 * Reads the metadata section of a MaxMind DB (.mmdb) file.
 *
 * Why not take it from @maxmind/geoip2-node: its ReaderModel keeps the underlying reader (and so the
 * metadata) private, and reaching into a private field would break silently on a library update. The
 * metadata format is small and frozen (MaxMind DB spec 2.0, "Database Metadata"), so decoding it here is the
 * sturdier choice. It also lets the caller reject a wrong kind of database before building a reader.
 */

import { Reader, type ReaderModel } from '@maxmind/geoip2-node';

export interface MmdbMetadata {
  /** e.g. 'GeoLite2-City', 'GeoIP2-City', 'GeoLite2-Country'. */
  databaseType: string;
  buildDate: Date;
  binaryFormatMajorVersion: number;
  ipVersion: number;
  languages: string[];
}

/** "\xAB\xCD\xEFMaxMind.com": the spec says the metadata map follows the last occurrence of this marker. */
const MARKER = Buffer.concat([Buffer.from([0xab, 0xcd, 0xef]), Buffer.from('MaxMind.com', 'latin1')]);

/** Throws an Error saying what is wrong when `buffer` is not a MaxMind DB file. */
export function readMmdbMetadata(buffer: Buffer): MmdbMetadata {
  const at = buffer.lastIndexOf(MARKER);
  if (at < 0) throw new Error('no MaxMind DB metadata marker found (not a .mmdb file)');
  let map: unknown;
  try {
    [map] = decodeMmdbValue(buffer, at + MARKER.length);
  } catch (error) {
    throw new Error(`unreadable MaxMind DB metadata: ${(error as Error).message}`, { cause: error });
  }
  if (!isRecord(map)) throw new Error('MaxMind DB metadata is not a map');
  const { database_type, build_epoch, binary_format_major_version, ip_version, languages } = map;
  if (typeof database_type !== 'string' || typeof build_epoch !== 'number') {
    throw new Error('MaxMind DB metadata lacks database_type or build_epoch');
  }
  return {
    databaseType: database_type,
    buildDate: new Date(build_epoch * 1000),
    binaryFormatMajorVersion:
      typeof binary_format_major_version === 'number' ? binary_format_major_version : 0,
    ipVersion: typeof ip_version === 'number' ? ip_version : 0,
    languages: Array.isArray(languages) ? languages.filter((l): l is string => typeof l === 'string') : [],
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

/**
 * Decodes one value of the MaxMind DB data format at `offset`; returns it and the offset after it. Only the
 * types metadata uses are needed, but all non-pointer types are handled so an unexpected extra field does
 * not break reading. Pointers never occur in metadata (they point into the data section). Exported for tests.
 */
export function decodeMmdbValue(buffer: Buffer, offset: number): [unknown, number] {
  const control = buffer.readUInt8(offset++);
  let type = control >> 5;
  if (type === 0) type = 7 + buffer.readUInt8(offset++); // extended type: the real type follows
  let size = control & 0x1f;
  if (size === 29) size = 29 + buffer.readUInt8(offset++);
  else if (size === 30) size = 285 + buffer.readUInt16BE((offset += 2) - 2);
  else if (size === 31) size = 65821 + buffer.readUIntBE((offset += 3) - 3, 3);
  const end = offset + size;
  switch (type) {
    case 2: // UTF-8 string
      if (end > buffer.length) throw new Error('string runs past the end of the file');
      return [buffer.toString('utf8', offset, end), end];
    case 3: // double
      return [buffer.readDoubleBE(offset), offset + 8];
    case 4: // bytes
      return [buffer.subarray(offset, end), end];
    case 5: // uint16
    case 6: // uint32
    case 9: // uint64
    case 10: {
      // uint128; build_epoch is a uint64 but seconds fit a double exactly for the next 285 million years.
      let value = 0;
      for (let i = offset; i < end; i++) value = value * 256 + buffer.readUInt8(i);
      return [value, end];
    }
    case 7: {
      // map
      const map: Record<string, unknown> = {};
      for (let i = 0; i < size; i++) {
        const [key, afterKey] = decodeMmdbValue(buffer, offset);
        const [value, afterValue] = decodeMmdbValue(buffer, afterKey);
        if (typeof key !== 'string') throw new Error('map key is not a string');
        map[key] = value;
        offset = afterValue;
      }
      return [map, offset];
    }
    case 8: // int32: only the full 4-byte form is negative; shorter forms are zero-padded positives
      return [
        size === 4 ? buffer.readInt32BE(offset) : size === 0 ? 0 : buffer.readUIntBE(offset, size),
        end,
      ];
    case 11: {
      // array
      const array: unknown[] = [];
      for (let i = 0; i < size; i++) {
        const [value, after] = decodeMmdbValue(buffer, offset);
        array.push(value);
        offset = after;
      }
      return [array, offset];
    }
    case 14: // boolean: the value is the size field, no payload
      return [size !== 0, offset];
    case 15: // float
      return [buffer.readFloatBE(offset), offset + 4];
    default:
      throw new Error(`unexpected data type ${type} at byte ${offset}`);
  }
}

/**
 * Opens a MaxMind DB already in memory: its metadata and a reader over it. Throws naming the database (`what`,
 * e.g. "GeoIP database", and `label`) and the advice when the bytes are not a MaxMind DB.
 */
export function openMmdb(
  buffer: Buffer,
  what: string,
  label: string,
  advice: string,
): { databaseType: string; databaseBuildDate: Date; reader: ReaderModel } {
  try {
    const { databaseType, buildDate } = readMmdbMetadata(buffer);
    return { databaseType, databaseBuildDate: buildDate, reader: Reader.openBuffer(buffer) };
  } catch (error) {
    throw new Error(
      `${what} ${label} is not a valid MaxMind DB file: ${(error as Error).message}. ${advice}`,
      {
        cause: error,
      },
    );
  }
}
