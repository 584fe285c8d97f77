import { isIP } from 'node:net';

/**
 * An IP address in canonical text form plus its numeric value, parsed once so that the internal-range
 * check, the egress-range match and the cache key all reuse the same work.
 *
 * `text` is canonical: IPv4 dotted quad, or RFC 5952 IPv6 (lower case, no leading zeros, longest zero run
 * compressed). IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are IPv4: a dual-stack listener reports an IPv4
 * caller in the mapped form, so the same caller can reach the logs both ways and must be one place.
 */
export type ParsedIp =
  | { readonly version: 4; readonly text: string; readonly value: number }
  | { readonly version: 6; readonly text: string; readonly value: bigint };

const COLON = 0x3a;
const DOT = 0x2e;
const OPEN_BRACKET = 0x5b;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/**
 * Parses an address as it appears in logs: surrounding whitespace, `1.2.3.4:port`, `[v6]`, `[v6]:port` and
 * `%zone` suffixes are accepted. Returns undefined for anything that is not an IP address.
 *
 * A bare IPv6 followed by `:port` cannot be told apart from a longer IPv6 address, so it is read as IPv6 –
 * that is why RFC 3986 requires brackets for it.
 */
export function parseIp(raw: string): ParsedIp | undefined {
  let s = raw.trim();
  if (s.length === 0) return undefined;
  if (s.charCodeAt(0) === OPEN_BRACKET) {
    const close = s.indexOf(']');
    if (close < 0) return undefined;
    const rest = s.slice(close + 1);
    if (rest.length > 0 && !(rest.charCodeAt(0) === COLON && isPort(rest, 1))) return undefined;
    s = s.slice(1, close);
    // Brackets only ever wrap IPv6; `[1.2.3.4]` is not a form any log writes.
    return isIP(stripZone(s)) === 6 ? fromV6(parseV6(stripZone(s))) : undefined;
  }
  switch (isIP(s)) {
    case 4:
      // node:net rejects leading zeros and out-of-range octets, so a valid string is already canonical.
      return { version: 4, text: s, value: parseV4(s) };
    case 6:
      return fromV6(parseV6(stripZone(s)));
  }
  const zoneless = stripZone(s);
  if (zoneless !== s) return isIP(zoneless) === 6 ? fromV6(parseV6(zoneless)) : undefined;
  // `1.2.3.4:443`: exactly one colon, and only after a dotted quad.
  const colon = s.indexOf(':');
  if (colon > 0 && s.indexOf(':', colon + 1) < 0 && isPort(s, colon + 1)) {
    const host = s.slice(0, colon);
    if (isIP(host) === 4) return { version: 4, text: host, value: parseV4(host) };
  }
  return undefined;
}

/** Canonical text of an address (see {@link ParsedIp}), or undefined when `raw` is not an IP address. */
export function normaliseIp(raw: string): string | undefined {
  return parseIp(raw)?.text;
}

function stripZone(s: string): string {
  const percent = s.indexOf('%');
  return percent < 0 ? s : s.slice(0, percent);
}

function isPort(s: string, from: number): boolean {
  const digits = s.length - from;
  if (digits < 1 || digits > 5) return false;
  let port = 0;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < DIGIT_0 || c > DIGIT_9) return false;
    port = port * 10 + (c - DIGIT_0);
  }
  return port <= 65535;
}

/** Value of a dotted quad already validated by isIP (so no checks here: this is the hot path). */
function parseV4(s: string): number {
  let value = 0;
  let octet = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === DOT) {
      value = value * 256 + octet;
      octet = 0;
    } else {
      octet = octet * 10 + (c - DIGIT_0);
    }
  }
  // Multiplication rather than `<<` keeps the value an unsigned 32-bit number without sign games.
  return value * 256 + octet;
}

function formatV4(value: number): string {
  return `${value >>> 24}.${(value >>> 16) & 0xff}.${(value >>> 8) & 0xff}.${value & 0xff}`;
}

/**
 * Eight 16-bit groups of an IPv6 address already validated by isIP (zone removed). One pass over char codes
 * into a fixed array: split/map/spread versions cost several times more, and IPv6 callers are common.
 */
function parseV6(s: string): number[] {
  const groups = [0, 0, 0, 0, 0, 0, 0, 0];
  let n = 0; // groups written so far
  let gapAt = -1; // index where `::` was seen
  let value = 0;
  let digits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === COLON) {
      if (digits > 0) {
        groups[n++] = value;
        value = 0;
        digits = 0;
      }
      if (s.charCodeAt(i + 1) === COLON) {
        gapAt = n;
        i++;
      }
    } else if (c === DOT) {
      // An embedded dotted quad is always last and fills the last two groups.
      const v4 = parseV4(s.slice(s.lastIndexOf(':') + 1));
      groups[n++] = v4 >>> 16;
      groups[n++] = v4 & 0xffff;
      digits = 0;
      break;
    } else {
      value = value * 16 + (c <= DIGIT_9 ? c - DIGIT_0 : (c | 0x20) - 0x57); // 0x57 = 'a' - 10
      digits++;
    }
  }
  if (digits > 0) groups[n++] = value;
  if (gapAt >= 0) {
    // Move the groups after `::` to the end, back to front so none is overwritten, and zero the gap.
    const tail = n - gapAt;
    for (let k = tail - 1; k >= 0; k--) groups[8 - tail + k] = groups[gapAt + k]!;
    for (let j = gapAt; j < 8 - tail; j++) groups[j] = 0;
  }
  return groups;
}

function fromV6(groups: number[]): ParsedIp {
  // ::ffff:a.b.c.d is an IPv4 client seen through a dual-stack socket: it is the same caller as a.b.c.d.
  if (
    groups[0] === 0 &&
    groups[1] === 0 &&
    groups[2] === 0 &&
    groups[3] === 0 &&
    groups[4] === 0 &&
    groups[5] === 0xffff
  ) {
    const v4 = groups[6]! * 0x10000 + groups[7]!;
    return { version: 4, text: formatV4(v4), value: v4 };
  }
  return { version: 6, text: formatV6Groups(groups), value: groupsValue(groups) };
}

function groupsValue(groups: number[]): bigint {
  // Four 32-bit words: half the BigInt operations of folding in eight 16-bit groups (BigInt math is slow).
  const word = (i: number) => BigInt(groups[i]! * 0x10000 + groups[i + 1]!);
  return (word(0) << 96n) | (word(2) << 64n) | (word(4) << 32n) | word(6);
}

function formatV6(value: bigint): string {
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((value >> shift) & 0xffffn));
  return formatV6Groups(groups);
}

/** RFC 5952 text: lower-case hex, no leading zeros, the longest (first on a tie) run of ≥2 zero groups as `::`. */
function formatV6Groups(groups: number[]): string {
  let bestStart = -1;
  let bestLength = 1; // a single zero group is never compressed
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  let text = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      text += '::';
      i += bestLength - 1;
      continue;
    }
    if (i > 0 && i !== bestStart + bestLength) text += ':';
    text += groups[i]!.toString(16);
  }
  return text;
}

/** A CIDR block; `first`/`last` are the inclusive numeric bounds. */
export type Cidr =
  | {
      readonly version: 4;
      readonly text: string;
      readonly prefix: number;
      readonly first: number;
      readonly last: number;
    }
  | {
      readonly version: 6;
      readonly text: string;
      readonly prefix: number;
      readonly first: bigint;
      readonly last: bigint;
    };

/**
 * Parses `address/prefix` (a bare address is a single host: /32 or /128). Throws an Error explaining what is
 * wrong. Host bits must be zero: `10.1.0.0/8` is rejected rather than silently widened to 10.0.0.0/8,
 * because in a config file it is far more likely a typo for /16 than a deliberate /8. IPv4-mapped IPv6
 * blocks (`::ffff:10.0.0.0/104`) become the IPv4 block they map, since addresses are normalised that way.
 */
export function parseCidr(text: string): Cidr {
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const address = slash < 0 ? trimmed : trimmed.slice(0, slash);
  const prefixText = slash < 0 ? undefined : trimmed.slice(slash + 1);
  const version = isIP(address);
  if (version === 0) throw new Error(`"${address}" is not an IPv4 or IPv6 address`);
  const bits = version === 4 ? 32 : 128;
  let prefix = bits;
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) {
      throw new Error(
        `prefix length "/${prefixText}" must be a whole number from 0 to ${bits} for IPv${version}`,
      );
    }
    prefix = Number(prefixText);
  }
  if (version === 4) return v4Cidr(parseV4(address), prefix);
  const value = v6Value(address);
  if (value >> 32n === 0xffffn && prefix >= 96) return v4Cidr(Number(value & 0xffffffffn), prefix - 96);
  const hostMask = (1n << BigInt(128 - prefix)) - 1n;
  if ((value & hostMask) !== 0n) {
    throw new Error(`host bits are set (did you mean ${formatV6(value & ~hostMask)}/${prefix}?)`);
  }
  return { version: 6, text: `${formatV6(value)}/${prefix}`, prefix, first: value, last: value | hostMask };
}

function v6Value(address: string): bigint {
  return groupsValue(parseV6(stripZone(address)));
}

function v4Cidr(value: number, prefix: number): Cidr {
  const size = 2 ** (32 - prefix);
  const first = value - (value % size);
  if (first !== value) throw new Error(`host bits are set (did you mean ${formatV4(first)}/${prefix}?)`);
  return { version: 4, text: `${formatV4(first)}/${prefix}`, prefix, first, last: first + size - 1 };
}

/**
 * Nested-or-disjoint intervals (which CIDR blocks always are) searchable in O(log n): sorted by start (the
 * larger block first on equal starts), each with the index of its innermost enclosing block. A lookup
 * binary-searches the last block starting at or before the address, then climbs enclosing blocks until one
 * contains it – so the most specific block wins, and the climb is at most the nesting depth.
 */
class IntervalIndex<T extends number | bigint> {
  private readonly first: T[] = [];
  private readonly last: T[] = [];
  private readonly parent: number[] = [];
  private readonly labels: string[] = [];

  constructor(blocks: { first: T; last: T; label: string; text: string }[]) {
    blocks.sort((a, b) =>
      a.first < b.first ? -1 : a.first > b.first ? 1 : a.last > b.last ? -1 : a.last < b.last ? 1 : 0,
    );
    const open: number[] = [];
    for (const block of blocks) {
      const previous = this.first.length - 1;
      if (previous >= 0 && this.first[previous] === block.first && this.last[previous] === block.last) {
        if (this.labels[previous] === block.label) continue;
        throw new Error(
          `${block.text} is listed twice, as "${this.labels[previous]}" and as "${block.label}"`,
        );
      }
      while (open.length > 0 && this.last[open[open.length - 1]!]! < block.first) open.pop();
      this.parent.push(open.length > 0 ? open[open.length - 1]! : -1);
      open.push(this.first.length);
      this.first.push(block.first);
      this.last.push(block.last);
      this.labels.push(block.label);
    }
  }

  get size(): number {
    return this.first.length;
  }

  match(value: T): string | undefined {
    let lo = 0;
    let hi = this.first.length - 1;
    let i = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.first[mid]! <= value) {
        i = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    while (i >= 0 && this.last[i]! < value) i = this.parent[i]!;
    return i >= 0 ? this.labels[i] : undefined;
  }
}

/** A set of labelled CIDR blocks (IPv4 and IPv6); {@link CidrSet.match} returns the most specific block's label. */
export class CidrSet {
  private readonly v4: IntervalIndex<number>;
  private readonly v6: IntervalIndex<bigint>;

  /** Throws when a block is not a valid CIDR or the same block carries two different labels. */
  constructor(entries: Iterable<readonly [cidr: string | Cidr, label: string]>) {
    const v4: { first: number; last: number; label: string; text: string }[] = [];
    const v6: { first: bigint; last: bigint; label: string; text: string }[] = [];
    for (const [cidrOrText, label] of entries) {
      const cidr = typeof cidrOrText === 'string' ? parseCidr(cidrOrText) : cidrOrText;
      if (cidr.version === 4) v4.push({ first: cidr.first, last: cidr.last, label, text: cidr.text });
      else v6.push({ first: cidr.first, last: cidr.last, label, text: cidr.text });
    }
    this.v4 = new IntervalIndex(v4);
    this.v6 = new IntervalIndex(v6);
  }

  /** Number of distinct blocks. */
  get size(): number {
    return this.v4.size + this.v6.size;
  }

  /** Label of the most specific block containing `ip`; undefined when none does or `ip` is not an address. */
  match(ip: string | ParsedIp): string | undefined {
    const parsed = typeof ip === 'string' ? parseIp(ip) : ip;
    if (parsed === undefined) return undefined;
    return parsed.version === 4 ? this.v4.match(parsed.value) : this.v6.match(parsed.value);
  }
}

/**
 * Addresses that say nothing about where a caller is, so they are never looked up and never alerted on.
 * Azure logs these for calls made from inside a virtual network, through private endpoints, or by
 * platform components; a GeoIP database has no location for them (or a misleading one).
 */
const INTERNAL_BLOCKS: readonly (readonly [string, string])[] = [
  // "This network" (RFC 1122 §3.2.1.3): 0.0.0.0 is "unspecified"; never a real source on the internet.
  ['0.0.0.0/8', 'unspecified'],
  // RFC 1918 private networks: VNets, on-premises networks, private endpoints.
  ['10.0.0.0/8', 'private'],
  ['172.16.0.0/12', 'private'],
  ['192.168.0.0/16', 'private'],
  // RFC 6598 shared address space: carrier-grade NAT between an ISP and its customers; the public side is what locates.
  ['100.64.0.0/10', 'cgnat'],
  // Loopback (RFC 1122): the call came from the same machine.
  ['127.0.0.0/8', 'loopback'],
  // Link-local (RFC 3927): auto-configured, never routed; also Azure IMDS (169.254.169.254).
  ['169.254.0.0/16', 'link-local'],
  // Documentation TEST-NET-1/2/3 (RFC 5737): only ever appear in examples and test data.
  ['192.0.2.0/24', 'documentation'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  // Benchmarking (RFC 2544): lab networks, not routed on the internet.
  ['198.18.0.0/15', 'benchmarking'],
  // Multicast (RFC 5771): a destination-only range, never a caller.
  ['224.0.0.0/4', 'multicast'],
  // Former class E, reserved for future use (RFC 1112): not routed.
  ['240.0.0.0/4', 'reserved'],
  // Limited broadcast (RFC 919): inside 240/4, labelled separately so diagnostics name it correctly.
  ['255.255.255.255/32', 'broadcast'],
  // IPv6 unspecified (RFC 4291): the "no address" address.
  ['::/128', 'unspecified'],
  // IPv6 loopback (RFC 4291).
  ['::1/128', 'loopback'],
  // Unique local addresses (RFC 4193): the IPv6 counterpart of RFC 1918 private networks.
  ['fc00::/7', 'private'],
  // IPv6 link-local (RFC 4291).
  ['fe80::/10', 'link-local'],
  // IPv6 multicast (RFC 4291): never a source.
  ['ff00::/8', 'multicast'],
  // IPv6 documentation (RFC 3849, and RFC 9637's larger 3fff::/20 from 2024).
  ['2001:db8::/32', 'documentation'],
  ['3fff::/20', 'documentation'],
];

const INTERNAL_RANGES = new CidrSet(INTERNAL_BLOCKS);
const INTERNAL_CIDRS = INTERNAL_BLOCKS.map(([text, label]) => ({ cidr: parseCidr(text), label }));

/**
 * Which internal range `ip` is in ('private', 'loopback', 'link-local', 'cgnat', 'documentation',
 * 'unspecified', 'benchmarking', 'multicast', 'reserved', 'broadcast'), or undefined for a public address or
 * a non-address.
 */
export function internalRange(ip: string | ParsedIp): string | undefined {
  return INTERNAL_RANGES.match(ip);
}

/** True when `ip` is an address that cannot be geolocated (see {@link internalRange}). */
export function isInternal(ip: string | ParsedIp): boolean {
  return INTERNAL_RANGES.match(ip) !== undefined;
}

/**
 * The label of an internal range that wholly contains `cidr`, if any. Used to reject configuration that
 * could never take effect (internal addresses are classified before any configured range is consulted).
 */
export function internalRangeContaining(cidr: Cidr): string | undefined {
  for (const { cidr: internal, label } of INTERNAL_CIDRS) {
    if (internal.version === cidr.version && internal.first <= cidr.first && cidr.last <= internal.last) {
      return label;
    }
  }
  return undefined;
}
