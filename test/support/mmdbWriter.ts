/**
 * A small MaxMind DB writer for test databases (MaxMind DB File Format Specification 2.0,
 * https://maxmind.github.io/MaxMind-DB/): an IPv6 search tree with 24-bit records (IPv4 networks live under
 * ::/96, as in MaxMind's own databases), a data section of maps, strings and unsigned integers, and the
 * metadata map after the "\xAB\xCD\xEFMaxMind.com" marker. Enough for @maxmind/geoip2-node to read it
 * (asn(), isp(), city()…); not a general writer: no pointers, no aliases, networks inserted in the given order
 * (a later, longer prefix inside an earlier one overrides that part).
 */
import { parseCidr } from '../../shared/geo/ip.js';

export type MmdbValue = string | number | boolean | MmdbValue[] | { [key: string]: MmdbValue };

export interface MmdbInput {
  /** e.g. `GeoLite2-ASN`, `GeoIP2-ISP` (what geoip2-node's method gate looks at). */
  databaseType: string;
  buildEpoch: number;
  /** CIDR (`1.128.0.0/11`, `2001:4860::/32`) → record. */
  networks: [string, Record<string, MmdbValue>][];
  description?: string;
}

const RECORD_BITS = 24;
const MARKER = Buffer.concat([Buffer.from([0xab, 0xcd, 0xef]), Buffer.from('MaxMind.com', 'latin1')]);

type Slot = { kind: 'empty' } | { kind: 'node'; index: number } | { kind: 'data'; offset: number };

export function writeMmdb(input: MmdbInput): Buffer {
  const data = new DataSection();
  const nodes: [Slot, Slot][] = [[{ kind: 'empty' }, { kind: 'empty' }]];
  for (const [cidr, record] of input.networks) {
    const { bits, length } = prefixBits(cidr);
    insert(nodes, bits, length, { kind: 'data', offset: data.add(record) });
  }
  const nodeCount = nodes.length;
  if (nodeCount + 16 + data.length >= 2 ** RECORD_BITS) throw new Error('too big for 24-bit records');
  const tree = Buffer.alloc(nodeCount * 6);
  const value = (slot: Slot): number =>
    slot.kind === 'empty' ? nodeCount : slot.kind === 'node' ? slot.index : nodeCount + 16 + slot.offset;
  nodes.forEach(([left, right], i) => {
    tree.writeUIntBE(value(left), i * 6, 3);
    tree.writeUIntBE(value(right), i * 6 + 3, 3);
  });
  const metadata = encode({
    node_count: nodeCount,
    record_size: { uint16: RECORD_BITS },
    ip_version: { uint16: 6 },
    database_type: input.databaseType,
    languages: ['en'],
    binary_format_major_version: { uint16: 2 },
    binary_format_minor_version: { uint16: 0 },
    build_epoch: { uint64: input.buildEpoch },
    description: { en: input.description ?? `${input.databaseType} test database` },
  });
  return Buffer.concat([tree, Buffer.alloc(16), data.bytes(), MARKER, metadata]);
}

/** The network's bits (128, IPv4 mapped to ::a.b.c.d) and prefix length in that 128-bit space. */
function prefixBits(text: string): { bits: bigint; length: number } {
  const cidr = parseCidr(text);
  return cidr.version === 4
    ? { bits: BigInt(cidr.first), length: 96 + cidr.prefix }
    : { bits: cidr.first, length: cidr.prefix };
}

function insert(nodes: [Slot, Slot][], bits: bigint, length: number, leaf: Slot): void {
  let node = 0;
  for (let depth = 0; depth < length; depth++) {
    const side = Number((bits >> BigInt(127 - depth)) & 1n) as 0 | 1;
    const pair = nodes[node]!;
    if (depth === length - 1) {
      pair[side] = leaf;
      return;
    }
    const slot = pair[side];
    if (slot.kind === 'node') {
      node = slot.index;
      continue;
    }
    // Empty, or a shorter network's data: a new node whose both halves keep what was there.
    nodes.push([slot, slot]);
    pair[side] = { kind: 'node', index: nodes.length - 1 };
    node = nodes.length - 1;
  }
}

class DataSection {
  private readonly parts: Buffer[] = [];
  private readonly offsets = new Map<string, number>();
  length = 0;

  /** Offset of the record's encoding (identical records stored once). */
  add(record: Record<string, MmdbValue>): number {
    const key = JSON.stringify(record);
    let offset = this.offsets.get(key);
    if (offset === undefined) {
      const bytes = encode(record);
      offset = this.length;
      this.parts.push(bytes);
      this.length += bytes.length;
      this.offsets.set(key, offset);
    }
    return offset;
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

type Encodable = MmdbValue | { uint16: number } | { uint64: number } | { [key: string]: Encodable };

/** Control byte(s): type (extended types after a 0 type), then the size (spec "Data Section Format"). */
function control(type: number, size: number): Buffer {
  const head: number[] = [];
  let sizeBits: number;
  const extra: number[] = [];
  if (size < 29) sizeBits = size;
  else if (size < 285) {
    sizeBits = 29;
    extra.push(size - 29);
  } else if (size < 65_821) {
    sizeBits = 30;
    extra.push((size - 285) >> 8, (size - 285) & 0xff);
  } else {
    sizeBits = 31;
    const rest = size - 65_821;
    extra.push(rest >> 16, (rest >> 8) & 0xff, rest & 0xff);
  }
  if (type <= 7) head.push((type << 5) | sizeBits);
  else head.push(sizeBits, type - 7);
  return Buffer.from([...head, ...extra]);
}

function unsigned(type: number, value: number): Buffer {
  if (!Number.isInteger(value) || value < 0) throw new Error(`not an unsigned integer: ${value}`);
  const bytes: number[] = [];
  for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.concat([control(type, bytes.length), Buffer.from(bytes)]);
}

function encode(value: Encodable): Buffer {
  if (typeof value === 'string') {
    const utf8 = Buffer.from(value, 'utf8');
    return Buffer.concat([control(2, utf8.length), utf8]);
  }
  if (typeof value === 'number') {
    if (value > 0xffff_ffff) return unsigned(9, value);
    return unsigned(6, value);
  }
  if (typeof value === 'boolean') return control(14, value ? 1 : 0);
  if (Array.isArray(value)) return Buffer.concat([control(11, value.length), ...value.map(encode)]);
  if ('uint16' in value && typeof value.uint16 === 'number') return unsigned(5, value.uint16);
  if ('uint64' in value && typeof value.uint64 === 'number') return unsigned(9, value.uint64);
  const entries = Object.entries(value);
  return Buffer.concat([control(7, entries.length), ...entries.flatMap(([k, v]) => [encode(k), encode(v)])]);
}
