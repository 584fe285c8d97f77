/**
 * `networkOf(ip)` once per distinct address: a {@link NetworkLocator} that remembers answers (including "no
 * network") in the two-generation LRU the City geolocator uses. Activity logs repeat a few busy addresses
 * thousands of times per run, so the pipeline can ask freely.
 */
import { LruCache } from './lru.js';
import type { Network, NetworkLocator } from './types.js';

/** Addresses remembered by default: ~100 bytes each, so ~10 MB at most. */
export const DEFAULT_NETWORK_CACHE_SIZE = 100_000;

export interface NetworkCacheStats {
  /** Lookups that reached the database. */
  lookups: number;
  cacheHits: number;
}

/** Marks a cached "not found" (the cache's own `undefined` means "not cached"). */
const NONE = null;

export class CachedNetworkLocator implements NetworkLocator {
  private readonly cache: LruCache<string, Network | typeof NONE>;
  private readonly counts: NetworkCacheStats = { lookups: 0, cacheHits: 0 };

  /** `capacity` 0 disables caching (every call reaches `inner`). */
  constructor(
    readonly inner: NetworkLocator,
    capacity = DEFAULT_NETWORK_CACHE_SIZE,
  ) {
    this.cache = new LruCache(capacity);
  }

  get databaseBuildDate(): Date {
    return this.inner.databaseBuildDate;
  }

  get databaseType(): string {
    return this.inner.databaseType;
  }

  /** A snapshot, so callers can diff two readings. */
  get stats(): NetworkCacheStats {
    return { ...this.counts };
  }

  /** Results are frozen: they are shared through the cache. */
  network(ip: string): Network | undefined {
    const cached = this.cache.get(ip);
    if (cached !== undefined) {
      this.counts.cacheHits++;
      return cached ?? undefined;
    }
    this.counts.lookups++;
    const found = this.inner.network(ip);
    const value = found === undefined ? NONE : Object.freeze({ asn: found.asn, org: found.org });
    this.cache.set(ip, value);
    return value ?? undefined;
  }
}

/** `networkOf(ip)` over `locator`, remembering up to `capacity` addresses. */
export function networkOf(
  locator: NetworkLocator,
  capacity = DEFAULT_NETWORK_CACHE_SIZE,
): (ip: string) => Network | undefined {
  const cached =
    locator instanceof CachedNetworkLocator ? locator : new CachedNetworkLocator(locator, capacity);
  return (ip) => cached.network(ip);
}
