import { describe, expect, it } from 'vitest';

import { AsnTableBuilder } from '../../shared/geo/asnTable.js';
import { CachedNetworkLocator, networkOf } from '../../shared/geo/networkCache.js';
import type { Network, NetworkLocator } from '../../shared/geo/types.js';

/** A real table with a call counter around it. */
function counted(): { locator: NetworkLocator; calls: string[] } {
  const table = new AsnTableBuilder()
    .add('8.8.8.0,8.8.8.255,15169,Google LLC\n20.190.128.0,20.190.191.255,8075,Microsoft Corporation', 'x')
    .build('test table', new Date(0));
  const calls: string[] = [];
  return {
    calls,
    locator: {
      databaseType: table.databaseType,
      databaseBuildDate: table.databaseBuildDate,
      network: (ip: string): Network | undefined => {
        calls.push(ip);
        return table.network(ip);
      },
    },
  };
}

describe('networkOf: one lookup per distinct address', () => {
  it('asks the database once per address, remembering "no network" too', () => {
    const { locator, calls } = counted();
    const cached = new CachedNetworkLocator(locator, 100);
    for (let i = 0; i < 3; i++) {
      expect(cached.network('8.8.8.8')).toEqual({ asn: 15169, org: 'Google LLC' });
      expect(cached.network('20.190.130.5')).toEqual({ asn: 8075, org: 'Microsoft Corporation' });
      expect(cached.network('1.1.1.1')).toBeUndefined();
      expect(cached.network('10.0.0.1')).toBeUndefined();
    }
    expect(calls).toEqual(['8.8.8.8', '20.190.130.5', '1.1.1.1', '10.0.0.1']);
    expect(cached.stats).toEqual({ lookups: 4, cacheHits: 8 });
    expect(cached.databaseType).toBe('test table');
    // Shared answers cannot be changed by one caller for the others.
    expect(Object.isFrozen(cached.network('8.8.8.8'))).toBe(true);
  });

  it('is bounded: old addresses are asked again once evicted; capacity 0 caches nothing', () => {
    const { locator, calls } = counted();
    const lookup = networkOf(locator, 4);
    for (let i = 0; i < 20; i++) lookup(`8.8.8.${i}`);
    lookup('8.8.8.0');
    expect(calls.filter((ip) => ip === '8.8.8.0')).toHaveLength(2);

    const none = counted();
    const uncached = networkOf(none.locator, 0);
    uncached('8.8.8.8');
    uncached('8.8.8.8');
    expect(none.calls).toHaveLength(2);
  });

  it('does not wrap a cached locator twice', () => {
    const { locator, calls } = counted();
    const cached = new CachedNetworkLocator(locator, 10);
    cached.network('8.8.8.8');
    networkOf(cached)('8.8.8.8');
    expect(calls).toHaveLength(1);
  });
});
