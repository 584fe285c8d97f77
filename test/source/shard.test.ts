import { describe, expect, it } from 'vitest';

import { fnv1a } from '../../shared/pipeline/callers.js';
import { hashMod, shardOf, xxh64 } from '../../shared/pipeline/shard.js';
import { legacyShardOf, parseShardMessage } from '../../shared/runtime/shards.js';

describe('queue-mode shard assignment (the one Log Analytics computes with hash_xxhash64)', () => {
  it("matches Kusto's documented hash_xxhash64 examples and XXH64's reference values", () => {
    // learn.microsoft.com/kusto/query/hash-xxhash64-function: hash_xxhash64("World") and ("World", 100).
    expect(xxh64('World')).toBe(1846988464401551951n);
    expect(hashMod('World', 100n)).toBe(51n);
    // XXH64 reference: the empty input, and inputs taking the 32-byte stripe, 8-, 4- and 1-byte tails.
    expect(xxh64('')).toBe(0xef46db3751d8e999n);
    expect(xxh64('a')).toBe(0xd24ec4f1a98c6e5bn);
    expect(xxh64('abc')).toBe(0x44bc2cf5ad770999n);
    expect(xxh64('Nobody inspects the spammish repetition')).toBe(0xfbcea83c8a378bf1n);
  });

  it('spreads operations over every shard, each to exactly one', () => {
    const ops = Array.from({ length: 400 }, (_, i) => `microsoft.rp${i % 37}/things${i}/write`);
    const counts = [0, 0, 0, 0];
    for (const op of ops) counts[shardOf(op, 4)]! += 1;
    for (const c of counts) expect(c).toBeGreaterThan(60);
    expect(counts.reduce((a, b) => a + b)).toBe(400);
    expect(ops.every((op) => shardOf(op, 1) === 0)).toBe(true);
  });
});

describe('shard messages and assignments', () => {
  it('accepts assignment 2 and the legacy 1; a legacy tick keeps the ranges of FNV-1a', () => {
    const m = { tickMs: 3_600_000, windowStartMs: 0, windowEndMs: 3_600_000, shard: 1, shards: 4 };
    expect(parseShardMessage({ v: 2, ...m }).v).toBe(2);
    expect(parseShardMessage({ v: 1, ...m }).v).toBe(1);
    expect(() => parseShardMessage({ v: 3, ...m })).toThrow(/not a shard message/);
    for (const op of ['microsoft.storage/storageaccounts/listkeys/action', 'microsoft.web/sites/write'])
      expect(legacyShardOf(op, 4)).toBe(Math.floor((fnv1a(op) * 4) / 2 ** 32));
  });
});
