import { describe, expect, it } from 'vitest';

import { LruCache } from '../../shared/geo/lru.js';

describe('LruCache', () => {
  it('keeps a recently used entry and drops ones not used since', () => {
    const cache = new LruCache<string, number>(6);
    cache.set('a', 1);
    cache.set('b', 2);
    cache.set('c', 3);
    expect(cache.get('a')).toBe(1); // a is now newer than b and c
    cache.set('d', 4);
    cache.set('e', 5);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('c')).toBeUndefined();
    expect(cache.get('a')).toBe(1);
    expect(cache.get('d')).toBe(4);
    expect(cache.get('e')).toBe(5);
  });

  it('never holds more than its capacity', () => {
    for (const capacity of [1, 2, 3, 10, 101]) {
      const cache = new LruCache<number, number>(capacity);
      for (let i = 0; i < 1000; i++) {
        cache.set(i, i);
        cache.get(i >> 1); // re-use older keys too, which promotes them
        expect(cache.size).toBeLessThanOrEqual(capacity);
      }
      // The most recent ⌈capacity/2⌉ insertions are all still there.
      expect(cache.get(999)).toBe(999);
    }
  });

  it('keeps a busy key however many one-off keys stream past', () => {
    const cache = new LruCache<string, number>(100);
    cache.set('busy', 0);
    for (let i = 0; i < 10_000; i++) {
      cache.set(`one-off-${i}`, i);
      if (i % 40 === 0) expect(cache.get('busy'), `after ${i}`).toBe(0);
    }
    expect(cache.get('one-off-0')).toBeUndefined();
  });

  it('overwrites without growing', () => {
    const cache = new LruCache<string, number>(10);
    cache.set('a', 1);
    cache.set('a', 2);
    expect(cache.size).toBe(1);
    expect(cache.get('a')).toBe(2);
  });

  it('stores nothing with capacity 0 and rejects a bad capacity', () => {
    const cache = new LruCache<string, number>(0);
    cache.set('a', 1);
    expect(cache.get('a')).toBeUndefined();
    expect(() => new LruCache(-1)).toThrow('cache size must be a whole number ≥ 0, got -1');
    expect(() => new LruCache(1.5)).toThrow('got 1.5');
  });
});
