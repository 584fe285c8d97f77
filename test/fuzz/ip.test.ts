/**
 * Garbage and boundary IPs: the parser and the geolocator never throw, reject what is not an address (leading
 * zeros are not read as octal, a megabyte of digits is not an address), accept what logs really hold (ports,
 * brackets, zones, IPv4-mapped IPv6) and always answer with one of their documented outcomes.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';

import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import { internalRange, normaliseIp, parseIp } from '../../shared/geo/ip.js';
import type { Geolocator } from '../../shared/geo/types.js';
import { hostileString } from './hostile.js';

let geo: Geolocator;
beforeAll(async () => {
  geo = await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' });
});

const KINDS = new Set(['city', 'internal', 'no-city', 'not-found', 'invalid']);

/** Strings that look a lot like addresses: digits, dots, colons, brackets, percent signs and hex. */
const ipLike = fc
  .array(fc.constantFrom(...'0123456789abcdefABCDEF.:[]%/ '.split('')), { maxLength: 48 })
  .map((cs) => cs.join(''));

describe('IP parsing', () => {
  it('never throws, and what it accepts is canonical (parsing its text gives it back)', () => {
    fc.assert(
      fc.property(fc.oneof(ipLike, hostileString(), fc.ipV4(), fc.ipV6(), fc.ipV4Extended()), (raw) => {
        const ip = parseIp(raw);
        if (ip === undefined) return;
        expect(normaliseIp(ip.text)).toBe(ip.text);
        expect(ip.text.length).toBeLessThanOrEqual(39);
      }),
      { numRuns: 3000 },
    );
  });

  it('every IPv4 and IPv6 address round-trips; IPv4-mapped IPv6 is IPv4', () => {
    fc.assert(
      fc.property(fc.ipV4(), (v4) => {
        expect(normaliseIp(v4)).toBe(v4);
        expect(normaliseIp(`::ffff:${v4}`)).toBe(v4);
        expect(normaliseIp(`[::ffff:${v4}]:443`)).toBe(v4);
        expect(normaliseIp(`${v4}:8080`)).toBe(v4);
      }),
    );
    fc.assert(
      fc.property(fc.ipV6(), (v6) => {
        const text = normaliseIp(v6);
        expect(text).toBeDefined();
        expect(normaliseIp(`[${v6}]:443`)).toBe(text);
        expect(normaliseIp(`${v6}%eth0`)).toBe(text);
      }),
    );
  });

  it('boundary cases', () => {
    expect(normaliseIp('fe80::1%eth0')).toBe('fe80::1');
    expect(internalRange('fe80::1%eth0')).toBe('link-local');
    expect(normaliseIp('[fe80::1%25eth0]:443')).toBe('fe80::1');
    expect(normaliseIp('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(internalRange('::ffff:10.1.2.3')).toBe('private');
    expect(normaliseIp('::ffff:0a01:0203')).toBe('10.1.2.3');
    // Leading zeros: some tools read 010 as octal 8; neither reading is safe, so the address is refused.
    expect(normaliseIp('010.1.1.1')).toBeUndefined();
    expect(normaliseIp('1.1.1.01')).toBeUndefined();
    expect(normaliseIp('256.1.1.1')).toBeUndefined();
    expect(normaliseIp('1.2.3')).toBeUndefined();
    expect(normaliseIp('0x7f.0.0.1')).toBeUndefined();
    expect(normaliseIp('2130706433')).toBeUndefined();
    expect(normaliseIp('1.2.3.4:99999')).toBeUndefined();
    expect(normaliseIp('1.2.3.4%eth0')).toBeUndefined();
    expect(normaliseIp('[1.2.3.4]')).toBeUndefined();
    expect(normaliseIp(`${'1'.repeat(1 << 20)}`)).toBeUndefined();
    expect(normaliseIp(`::${'1'.repeat(1 << 20)}`)).toBeUndefined();
  });
});

describe('geolocation of hostile input', () => {
  it('never throws and always answers one of the documented kinds, each counted', () => {
    const before = { ...geo.stats };
    const seen: Record<string, number> = {};
    fc.assert(
      fc.property(
        fc.oneof(ipLike, hostileString(), fc.ipV4(), fc.ipV6(), fc.constant('fe80::1%eth0')),
        (raw) => {
          const r = geo.locate(raw);
          expect(KINDS.has(r.kind)).toBe(true);
          if (r.kind === 'city') expect(r.city.key).toMatch(/^[gce]:/);
          seen[r.kind] = (seen[r.kind] ?? 0) + 1;
        },
      ),
      { numRuns: 2000 },
    );
    const after = geo.stats;
    expect(after.internal - before.internal).toBe(seen.internal ?? 0);
    expect(after.noCity - before.noCity).toBe(seen['no-city'] ?? 0);
    expect(after.notFound - before.notFound).toBe(seen['not-found'] ?? 0);
    expect(after.invalid - before.invalid).toBe(seen.invalid ?? 0);
    expect(seen.invalid).toBeGreaterThan(100);
  });

  it('a megabyte of garbage is an invalid IP, quickly', () => {
    const t = performance.now();
    for (const c of ['1', 'a', ':', '.', '\u0000', '\ud800'])
      expect(geo.locate(c.repeat(1 << 20)).kind).toBe('invalid');
    expect(performance.now() - t).toBeLessThan(2_000);
  });
});
