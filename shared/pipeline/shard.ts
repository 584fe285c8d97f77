/**
 * Which queue-mode shard owns an operation. The same assignment is computed by Log Analytics, so that a shard
 * downloads only its share of the window (activity.kql: `binary_and(hash_xxhash64(OperationKey), 2^63 - 1) %
 * shardCount == shardIndex`), and here, where the shard keeps the groups it owns.
 *
 * Kusto's hash_xxhash64 of a string is XXH64 (seed 0) of its UTF-8 bytes: the documented example
 * hash_xxhash64("World") = 1846988464401551951 is a test vector (test/source/shard.test.ts). Clearing the sign
 * bit makes the remainder the same whether the service treats the hash as signed or unsigned.
 */

const M64 = (1n << 64n) - 1n;
const SIGN_CLEARED = (1n << 63n) - 1n;
const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;

const rotl = (x: bigint, r: bigint): bigint => ((x << r) | (x >> (64n - r))) & M64;
const mul = (a: bigint, b: bigint): bigint => (a * b) & M64;
const round = (acc: bigint, lane: bigint): bigint => mul(rotl((acc + mul(lane, P2)) & M64, 31n), P1);
const merge = (h: bigint, v: bigint): bigint => (mul(h ^ round(0n, v), P1) + P4) & M64;

/** XXH64 with seed 0 of the UTF-8 bytes of `s`, as an unsigned 64-bit integer. */
export function xxh64(s: string): bigint {
  const b = Buffer.from(s, 'utf8');
  const n = b.length;
  let i = 0;
  let h: bigint;
  if (n >= 32) {
    const v = [(P1 + P2) & M64, P2, 0n, (M64 + 1n - P1) & M64];
    for (; i + 32 <= n; i += 32)
      for (let k = 0; k < 4; k++) v[k] = round(v[k]!, b.readBigUInt64LE(i + 8 * k));
    h = (rotl(v[0]!, 1n) + rotl(v[1]!, 7n) + rotl(v[2]!, 12n) + rotl(v[3]!, 18n)) & M64;
    for (const x of v) h = merge(h, x);
  } else {
    h = P5;
  }
  h = (h + BigInt(n)) & M64;
  for (; i + 8 <= n; i += 8) h = (mul(rotl(h ^ round(0n, b.readBigUInt64LE(i)), 27n), P1) + P4) & M64;
  if (i + 4 <= n) {
    h = (mul(rotl(h ^ mul(BigInt(b.readUInt32LE(i)), P1), 23n), P2) + P3) & M64;
    i += 4;
  }
  for (; i < n; i++) h = mul(rotl(h ^ mul(BigInt(b[i]!), P5), 11n), P1);
  h ^= h >> 33n;
  h = mul(h, P2);
  h ^= h >> 29n;
  h = mul(h, P3);
  return h ^ (h >> 32n);
}

/** `binary_and(hash_xxhash64(s), 2^63 - 1) % mod`, as activity.kql computes it. */
export function hashMod(s: string, mod: bigint): bigint {
  return (xxh64(s) & SIGN_CLEARED) % mod;
}

const owners = new Map<string, number>();

/** The shard (0 to shards − 1) owning an operation (its lower-cased name, as the query's OperationKey). */
export function shardOf(operationKey: string, shards: number): number {
  if (shards <= 1) return 0;
  const key = `${shards}\u0000${operationKey}`;
  let s = owners.get(key);
  if (s === undefined) {
    s = Number(hashMod(operationKey, BigInt(shards)));
    if (owners.size >= 100_000) owners.clear();
    owners.set(key, s);
  }
  return s;
}

/** A queue-mode shard's share of a window: the operations with shardOf(operationKey, count) === index. */
export interface ShardShare {
  index: number;
  count: number;
}
