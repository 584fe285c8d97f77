import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import {
  asnPackageBuildDate,
  AsnTableBuilder,
  embeddedAsnPackage,
  openEmbeddedAsnTable,
} from '../../shared/geo/asnTable.js';
import { isInternal, parseIp } from '../../shared/geo/ip.js';

const EPOCH = new Date(0);

/** The package's format: `start,end,asn,org`, inclusive ranges, org in quotes when it holds a comma or quote. */
const V4 = [
  '1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc."',
  '1.0.4.0,1.0.7.255,38803,Gtelecom Pty Ltd',
  '2.26.200.0,2.26.215.255,201907,"LLC ""SPUTNIK"""',
  '8.8.8.0,8.8.8.255,15169,Google LLC',
  '9.9.9.9,9.9.9.9,19281,',
  '20.190.128.0,20.190.191.255,8075,Microsoft Corporation',
].join('\r\n');
const V6 = [
  '2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,15169,Google LLC',
  '2a01:111::,2a01:111:ffff:ffff:ffff:ffff:ffff:ffff,8075,Microsoft Corporation',
].join('\n');

describe('AsnTable (the embedded offline network source)', () => {
  const table = new AsnTableBuilder().add(V4, 'v4.csv').add(V6, 'v6.csv').build('test', EPOCH);

  it('finds the row an address falls in, at both ends of a range, for IPv4 and IPv6', () => {
    expect(table.network('1.0.0.0')).toEqual({ asn: 13335, org: 'Cloudflare, Inc.' });
    expect(table.network('1.0.0.255')).toEqual({ asn: 13335, org: 'Cloudflare, Inc.' });
    expect(table.network('1.0.1.0')).toBeUndefined();
    expect(table.network('1.0.3.255')).toBeUndefined();
    expect(table.network('1.0.4.0')).toEqual({ asn: 38803, org: 'Gtelecom Pty Ltd' });
    expect(table.network('2.26.201.7')).toEqual({ asn: 201907, org: 'LLC "SPUTNIK"' });
    expect(table.network('8.8.8.8')).toEqual({ asn: 15169, org: 'Google LLC' });
    expect(table.network('9.9.9.9')).toEqual({ asn: 19281, org: '' });
    expect(table.network('9.9.9.10')).toBeUndefined();
    expect(table.network('0.255.255.255')).toBeUndefined(); // before the first row
    expect(table.network('223.255.255.255')).toBeUndefined(); // after the last row
    expect(table.network('2001:4860:4860::8888')).toEqual({ asn: 15169, org: 'Google LLC' });
    expect(table.network('2a01:111:f400::1')).toEqual({ asn: 8075, org: 'Microsoft Corporation' });
    expect(table.network('2a01:112::')).toBeUndefined();
    expect(table.network('2001:4859:ffff:ffff:ffff:ffff:ffff:ffff')).toBeUndefined();
  });

  it('reads addresses as the logs write them (ports, brackets, IPv4-mapped IPv6)', () => {
    expect(table.network('8.8.8.8:443')).toEqual({ asn: 15169, org: 'Google LLC' });
    expect(table.network('::ffff:8.8.8.8')).toEqual({ asn: 15169, org: 'Google LLC' });
    expect(table.network('[2001:4860::1]:443')).toEqual({ asn: 15169, org: 'Google LLC' });
  });

  it('never looks up internal or invalid addresses', () => {
    for (const ip of [
      '10.1.2.3',
      '192.168.0.1',
      '127.0.0.1',
      '100.64.0.1',
      '::1',
      'fe80::1',
      '',
      'not-an-ip',
    ]) {
      expect(table.network(ip), ip).toBeUndefined();
    }
  });

  it('deduplicates organisations into one string table', () => {
    expect(table.stats).toEqual({
      rows: 8,
      organisations: 6,
      skipped: 0,
      skippedLines: [],
      overlapping: 0,
    });
  });

  it('counts and skips malformed lines with their line numbers, keeping the rest', () => {
    const csv = [
      '1.0.0.0,1.0.0.255,13335,Cloudflare', // 1 ok
      '1.0.1.0,1.0.1.255,42', // 2 too few fields
      '1.0.2.0,1.0.2.x,42,Bad', // 3 not an address
      '1.0.3.0,1.0.3.255,4x2,Bad', // 4 ASN
      '1.0.4.0,1.0.4.255,42,"Unclosed', // 5 quoting
      '1.0.5.255,1.0.5.0,42,Backwards', // 6 end before start
      '1.0.6.0,2001::,42,Mixed', // 7 families
      '1.0.6.0,1.0.6.255,99999999999,Big', // 8 ASN beyond 32 bits
      '01.0.7.0,1.0.7.255,42,Leading zero', // 9 not an address
      '', // 10 blank: ignored, not counted
      '1.0.8.0,1.0.8.255,64512,Fine', // 11 ok
      '1.0.7.0,1.0.7.255,42,Late', // 12 out of order
      '1.0.8.128,1.0.9.255,64513,Overlap', // 13 ok, overlapping
    ].join('\n');
    const t = new AsnTableBuilder().add(csv, 'bad.csv').build('test', EPOCH);
    expect(t.stats.rows).toBe(3);
    expect(t.stats.overlapping).toBe(1);
    expect(t.stats.skipped).toBe(9);
    expect(t.stats.skippedLines.map((s) => [s.line, s.reason])).toEqual([
      [2, 'fewer than 4 fields'],
      [3, 'not an IP address range'],
      [4, 'ASN "4x2" is not a number'],
      [5, 'badly quoted organisation'],
      [6, 'range ends before it starts'],
      [7, 'range mixes IPv4 and IPv6'],
      [8, 'ASN "99999999999" is not a number'],
      [9, 'not an IP address range'],
      [12, 'out of order (rows must be sorted by range start)'],
    ]);
    expect(t.stats.skippedLines.every((s) => s.file === 'bad.csv')).toBe(true);
    expect(t.network('1.0.0.1')?.asn).toBe(13335);
    expect(t.network('1.0.8.1')?.asn).toBe(64512);
    expect(t.network('1.0.9.1')?.asn).toBe(64513);
    expect(t.network('1.0.2.1')).toBeUndefined();
  });

  it('keeps the line numbers of the first 20 skipped lines and counts all', () => {
    const csv = Array.from({ length: 50 }, (_, i) => `x${i},y,1,Z`).join('\n');
    const t = new AsnTableBuilder().add(csv, 'junk.csv').build('test', EPOCH);
    expect(t.stats.skipped).toBe(50);
    expect(t.stats.skippedLines.map((s) => s.line)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('answers exactly as a linear scan of the rows does (random disjoint IPv4 and IPv6 ranges)', () => {
    const v4Range = fc.tuple(fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 0, max: 5000 }));
    fc.assert(
      fc.property(
        fc.uniqueArray(v4Range, { minLength: 1, maxLength: 40, selector: ([s]) => s }),
        fc.array(fc.integer({ min: 0, max: 0xffff_ffff }), { maxLength: 40 }),
        fc.uniqueArray(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), { minLength: 1, maxLength: 20 }),
        (raw4, probes4, raw6) => {
          // Disjoint, sorted ranges; ASN = row number so the answer names the row.
          const rows4: [number, number][] = [];
          for (const [start, len] of [...raw4].sort((a, b) => a[0] - b[0])) {
            const previous = rows4.at(-1);
            if (previous !== undefined && start <= previous[1]) continue;
            rows4.push([start, Math.min(0xffff_ffff, start + len)]);
          }
          const sorted6 = [...raw6].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
          const rows6: [bigint, bigint][] = [];
          for (let i = 0; i < sorted6.length; i++) {
            const start = sorted6[i] ?? 0n;
            const next = sorted6[i + 1] ?? 1n << 128n;
            rows6.push([start, start + (next - start - 1n) / 2n]);
          }
          const csv4 = rows4.map(([s, e], i) => `${v4(s)},${v4(e)},${i},org${i}`).join('\n');
          const csv6 = rows6.map(([s, e], i) => `${v6(s)},${v6(e)},${i},org${i}`).join('\n');
          const t = new AsnTableBuilder().add(csv4, '4').add(csv6, '6').build('p', EPOCH);
          expect(t.stats.skipped).toBe(0);
          const probes = [...probes4, ...rows4.flatMap(([s, e]) => [s, e, s - 1, e + 1])];
          for (const p of probes.filter((x) => x >= 0 && x <= 0xffff_ffff)) {
            const ip = v4(p);
            const row =
              parseIp(ip) === undefined || internal(ip) ? -1 : rows4.findIndex(([s, e]) => s <= p && p <= e);
            expect(t.network(ip)?.asn ?? -1, ip).toBe(row);
          }
          for (const p of rows6.flatMap(([s, e]) => [s, e, e + 1n, s - 1n])) {
            if (p < 0n || p >= 1n << 128n) continue;
            const ip = v6(p);
            const row =
              internal(ip) || parseIp(ip)?.version === 4
                ? undefined
                : rows6.findIndex(([s, e]) => s <= p && p <= e);
            if (row === undefined) continue; // IPv4-mapped or internal: not an IPv6 lookup
            expect(t.network(ip)?.asn ?? -1, ip).toBe(row);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('the embedded @ip-location-db/asn tables', () => {
  it('is installed as a devDependency, dated by its version', () => {
    expect(embeddedAsnPackage()?.version).toBe('2.3.2026061719');
    expect(asnPackageBuildDate('2.3.2026061719')).toEqual(new Date('2026-06-17T19:00:00Z'));
    expect(asnPackageBuildDate('1.0.0')).toEqual(new Date(0));
  });

  it('loads once per process, with every row and known networks', async () => {
    const started = performance.now();
    const table = await openEmbeddedAsnTable();
    const ms = performance.now() - started;
    expect(await openEmbeddedAsnTable()).toBe(table);
    expect(table?.databaseType).toBe('ip-location-db asn 2.3.2026061719');
    expect(table?.databaseBuildDate).toEqual(new Date('2026-06-17T19:00:00Z'));
    expect(table?.stats).toMatchObject({ rows: 411_961 + 103_197, skipped: 0 });
    expect(table?.network('8.8.8.8')).toEqual({ asn: 15169, org: 'Google LLC' });
    expect(table?.network('1.1.1.1')).toEqual({ asn: 13335, org: 'Cloudflare, Inc.' });
    expect(table?.network('20.190.128.1')?.asn).toBe(8075);
    expect(table?.network('2001:4860:4860::8888')?.asn).toBe(15169);
    // ~0.7–1.3 s on two shared cores; generous here so a busy CI machine does not fail it.
    expect(ms).toBeLessThan(10_000);
  });
});

function v4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function v6(n: bigint): string {
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16));
  return groups.join(':');
}

function internal(ip: string): boolean {
  const parsed = parseIp(ip);
  return parsed !== undefined && isInternal(parsed);
}
