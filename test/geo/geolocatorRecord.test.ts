/**
 * The geolocator reads the database's raw records (mmdb-lib) instead of geoip2-node's City model: on the real
 * GeoLite2-City, tens of thousands of addresses, IPv4 and IPv6, give the same place as geoip2-node's city() read
 * the way the geolocator read it before (the reference below).
 */
import { readFile } from 'node:fs/promises';

import { AddressNotFoundError, type City as CityModel, Reader } from '@maxmind/geoip2-node';
import { describe, expect, it } from 'vitest';

import { embeddedDatabasePath, nameOf, openGeolocator } from '../../shared/geo/geolocator.js';
import { isInternal, parseIp } from '../../shared/geo/ip.js';
import type { City } from '../../shared/geo/types.js';

/** The place geoip2-node's model gives, as the geolocator built it from the model ('country' mode, no egress). */
function reference(model: CityModel | undefined): City | 'not-found' {
  if (model === undefined) return 'not-found';
  const country = model.country?.isoCode;
  const geonameId = model.city?.geonameId;
  const place = (key: string, name: string, region: string): City => {
    const c: City = {
      key,
      ...(geonameId !== undefined && key.startsWith('g:') ? { geonameId } : {}),
      name,
      region,
      country: country ?? '',
      countryName: nameOf(model.country?.names),
      latitude: model.location?.latitude ?? 0,
      longitude: model.location?.longitude ?? 0,
      accuracyRadiusKm: model.location?.accuracyRadius,
    };
    if (c.accuracyRadiusKm === undefined) delete c.accuracyRadiusKm;
    return c;
  };
  if (geonameId !== undefined) {
    return place(`g:${geonameId}`, nameOf(model.city?.names), nameOf(model.subdivisions?.[0]?.names));
  }
  return country === undefined ? 'not-found' : place(`c:${country}`, '', '');
}

/** A deterministic spread of public addresses (xorshift), plus IPv6 in the ranges the database covers. */
function addresses(count: number): string[] {
  let x = 0x2545f491;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const n = next();
    out.push(`${(n >>> 24) % 223 || 1}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`);
    if (i % 4 === 0) {
      const h = next();
      out.push(
        `2${(h >>> 20) % 2 === 0 ? 'a0' : '001'}:${(h & 0xffff).toString(16)}:${(h >>> 16).toString(16)}::1`,
      );
    }
  }
  return out;
}

describe('geolocator on raw records', () => {
  it('gives the place geoip2-node’s City model gave, for 25,000 addresses', async () => {
    const path = embeddedDatabasePath()!;
    const model = Reader.openBuffer(await readFile(path));
    const geo = await openGeolocator({ databasePath: path, noCityMode: 'country', cacheSize: 0 });
    let cities = 0;
    for (const ip of addresses(20_000)) {
      // Private, loopback and other internal addresses are classified before any lookup.
      if (isInternal(parseIp(ip)!)) continue;
      let record: CityModel | undefined;
      try {
        record = model.city(ip);
      } catch (error) {
        if (!(error instanceof AddressNotFoundError)) throw error;
      }
      const expected = reference(record);
      const actual = geo.locate(ip);
      if (expected === 'not-found') expect(actual, ip).toEqual({ kind: 'not-found' });
      else {
        expect(actual, ip).toEqual({ kind: 'city', city: expected });
        cities++;
      }
    }
    // The sample must exercise the lookups, not only misses.
    expect(cities).toBeGreaterThan(10_000);
  });
});
