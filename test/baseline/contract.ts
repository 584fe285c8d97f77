/**
 * The behaviour every BaselineStore must have, run against each adapter (SQLite, Table Storage on Azurite).
 * The pipeline is written against these guarantees only.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  type BaselineStore,
  type Entity,
  InvalidEntityError,
  type PartitionUpdate,
  TABLE_NAMES,
  type TableName,
} from '../../shared/baseline/store.js';

export interface StoreFixture {
  store: BaselineStore;
  /** A second, independent store instance on the same backend (same tables / same file). */
  openPeer(): Promise<BaselineStore>;
  /**
   * Writes a row the way another tool would, bypassing the adapter: `count` as the backend's 64-bit integer
   * type (Edm.Int64 for Table Storage). Keys are plain ASCII.
   */
  writeForeignRow(
    table: TableName,
    partition: string,
    rowKey: string,
    count: bigint,
    label: string,
  ): Promise<void>;
  /** Conflicts retried by the store and its peers; undefined when the backend serialises writers instead. */
  conflictRetries?: () => number;
  cleanup(): Promise<void>;
}

/** A pure, idempotent apply: counts (operation, city, hour) once, however often it is re-run. */
export function countHour(rowKeys: readonly string[], hour: string): PartitionUpdate {
  return (current) => {
    const changes = new Map<string, Entity>();
    for (const key of rowKeys) {
      const row = current.get(key);
      const hours = typeof row?.hours === 'string' && row.hours !== '' ? row.hours.split(',') : [];
      if (hours.includes(hour)) continue;
      const count = typeof row?.count === 'number' ? row.count : 0;
      changes.set(key, { count: count + 1, hours: [...hours, hour].join(',') });
    }
    return changes;
  };
}

/** A non-idempotent increment: only correct if the store isolates concurrent writers. */
export const increment =
  (rowKey: string): PartitionUpdate =>
  (current) => {
    const count = current.get(rowKey)?.count;
    return new Map([[rowKey, { count: (typeof count === 'number' ? count : 0) + 1 }]]);
  };

const put = (rows: Record<string, Entity | null>): PartitionUpdate => {
  const changes = new Map(Object.entries(rows));
  return () => new Map(changes);
};

const sortedKeys = (m: ReadonlyMap<string, unknown>): string[] => [...m.keys()].sort();

/** Logical keys a detector really produces, plus every character Table Storage forbids or mangles. */
export const AWKWARD_KEYS: readonly string[] = [
  'Microsoft.Compute/virtualMachines/write',
  'microsoft.authorization/roleassignments/write',
  'a\\b#c?d',
  '100% sure',
  "O'Brien",
  '!21 looks escaped!',
  'tab\there\nnewline\r\u0000nul\u001f\u007f\u0080\u009f',
  'São Paulo · Zürich · 東京 · 😀',
  ' leading and trailing ',
  '',
  '~op',
  'x'.repeat(600),
  '/'.repeat(300),
  '😀'.repeat(300),
];

export function storeContract(name: string, factory: () => Promise<StoreFixture>): void {
  describe(`BaselineStore contract: ${name}`, () => {
    let fx: StoreFixture;
    let store: BaselineStore;

    beforeEach(async () => {
      fx = await factory();
      store = fx.store;
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    it('round-trips strings, numbers and booleans exactly', async () => {
      const row: Entity = {
        text: 'Zürich / "quoted" \'single\' \\ # ? % 😀 \u0001',
        empty: '',
        numeric: '42',
        zero: 0,
        one: 1,
        negative: -17,
        int32Max: 2 ** 31 - 1,
        overInt32: 2 ** 31,
        maxSafe: Number.MAX_SAFE_INTEGER,
        minSafe: Number.MIN_SAFE_INTEGER,
        fraction: 0.1,
        third: 1 / 3,
        tiny: 5e-324,
        huge: 1.7976931348623157e308,
        exponent: 1e21,
        epochMs: 1_733_000_000_123,
        yes: true,
        no: false,
      };
      await store.updatePartition('baselines', 'p', put({ r: row }));

      const viaPartition = (await store.readPartition('baselines', 'p')).get('r');
      const viaPoint = (await store.readRows('baselines', 'p', ['r'])).get('r');
      expect(viaPartition).toStrictEqual(row);
      expect(viaPoint).toStrictEqual(row);
      for (const value of Object.values(viaPartition!)) expect(typeof value).not.toBe('bigint');
    });

    it('keeps every table separate, the outbox included', async () => {
      expect(TABLE_NAMES).toStrictEqual(['baselines', 'tenant', 'alerts', 'state', 'outbox']);
      for (const [i, table] of TABLE_NAMES.entries()) {
        await store.updatePartition(table, 'same', put({ r: { table, i } }));
      }
      for (const [i, table] of TABLE_NAMES.entries()) {
        expect(await store.readPartition(table, 'same')).toStrictEqual(new Map([['r', { table, i }]]));
        expect(await store.listPartitions(table)).toStrictEqual(['same']);
      }
    });

    it('replaces a row on write instead of merging properties', async () => {
      await store.updatePartition('state', 'p', put({ r: { a: 1, b: 'x' } }));
      await store.updatePartition('state', 'p', put({ r: { c: true } }));
      expect((await store.readRows('state', 'p', ['r'])).get('r')).toStrictEqual({ c: true });
    });

    it('reads integers written by other tools as numbers, never bigint', async () => {
      await fx.writeForeignRow('tenant', 'foreign', 'row1', 9_007_199_254_740_991n, 'other tool');
      await fx.writeForeignRow('tenant', 'foreign', 'row2', -5n, 'other tool');

      const rows = await store.readPartition('tenant', 'foreign');
      expect(rows.get('row1')).toStrictEqual({ count: 9_007_199_254_740_991, label: 'other tool' });
      expect((await store.readRows('tenant', 'foreign', ['row2'])).get('row2')).toStrictEqual({
        count: -5,
        label: 'other tool',
      });
      // And such rows can be updated like any other.
      await store.updatePartition('tenant', 'foreign', increment('row2'));
      expect((await store.readRows('tenant', 'foreign', ['row2'])).get('row2')).toStrictEqual({ count: -4 });
    });

    it('keeps partitions and tables apart', async () => {
      await store.updatePartition('baselines', 'op-a', put({ r: { v: 1 } }));
      await store.updatePartition('baselines', 'op-b', put({ r: { v: 2 } }));
      await store.updatePartition('alerts', 'op-a', put({ r: { v: 3 } }));

      expect(await store.readPartition('baselines', 'op-a')).toStrictEqual(new Map([['r', { v: 1 }]]));
      expect(await store.readPartition('baselines', 'op-b')).toStrictEqual(new Map([['r', { v: 2 }]]));
      expect(await store.readPartition('alerts', 'op-a')).toStrictEqual(new Map([['r', { v: 3 }]]));
      expect(await store.readPartition('tenant', 'op-a')).toStrictEqual(new Map());
      // A partition key that is a prefix of another must not match it.
      expect(await store.readPartition('baselines', 'op-')).toStrictEqual(new Map());
      expect((await store.listPartitions('baselines')).sort()).toStrictEqual(['op-a', 'op-b']);
    });

    it('stores any logical key: slashes, reserved characters, control characters, unicode, long keys', async () => {
      const rows = Object.fromEntries(AWKWARD_KEYS.map((k, i): [string, Entity] => [k, { i }]));
      for (const partition of AWKWARD_KEYS) {
        await store.updatePartition('baselines', partition, put(rows));
      }
      // Keys sharing a long prefix must stay distinct after shortening.
      const longA = `${'y'.repeat(1000)}A`;
      const longB = `${'y'.repeat(1000)}B`;
      await store.updatePartition('baselines', longA, put({ [longA]: { v: 'A' }, [longB]: { v: 'B' } }));
      await store.updatePartition('baselines', longB, put({ [longB]: { v: 'B2' } }));

      for (const partition of AWKWARD_KEYS) {
        const read = await store.readPartition('baselines', partition);
        expect(sortedKeys(read)).toStrictEqual([...AWKWARD_KEYS].sort());
        for (const [k, i] of AWKWARD_KEYS.map((k, i) => [k, i] as const))
          expect(read.get(k)).toStrictEqual({ i });
      }
      const pointRead = await store.readRows('baselines', AWKWARD_KEYS[0]!, [...AWKWARD_KEYS, 'absent/key']);
      expect(sortedKeys(pointRead)).toStrictEqual([...AWKWARD_KEYS].sort());
      expect(await store.readPartition('baselines', longA)).toStrictEqual(
        new Map([
          [longA, { v: 'A' }],
          [longB, { v: 'B' }],
        ]),
      );
      expect(await store.readPartition('baselines', longB)).toStrictEqual(new Map([[longB, { v: 'B2' }]]));
      expect((await store.listPartitions('baselines')).sort()).toStrictEqual(
        [...AWKWARD_KEYS, longA, longB].sort(),
      );

      // Deleting by those keys works too (point operations use the key in the URL).
      const deleteAll = (): Map<string, null> => new Map(AWKWARD_KEYS.map((k) => [k, null]));
      await store.updatePartition('baselines', AWKWARD_KEYS[0]!, deleteAll);
      await store.updateRows('baselines', AWKWARD_KEYS[1]!, AWKWARD_KEYS, deleteAll);
      expect(await store.readPartition('baselines', AWKWARD_KEYS[0]!)).toStrictEqual(new Map());
      expect(await store.readPartition('baselines', AWKWARD_KEYS[1]!)).toStrictEqual(new Map());
    });

    it('rejects keys with lone surrogates, which no backend can store faithfully', async () => {
      await expect(store.updatePartition('state', 'bad\ud800', put({ r: { v: 1 } }))).rejects.toThrow(
        InvalidEntityError,
      );
      await expect(store.updatePartition('state', 'p', put({ 'bad\udc00': { v: 1 } }))).rejects.toThrow(
        InvalidEntityError,
      );
      await expect(store.readRows('state', 'p', ['\ud83d'])).rejects.toThrow(InvalidEntityError);
    });

    it('writes more than 100 changed rows in one updatePartition (creates, updates, deletes)', async () => {
      const keys = Array.from({ length: 250 }, (_, i) => `Microsoft.Op/${i}`);
      await store.updatePartition('baselines', 'big', () => new Map(keys.map((k, i) => [k, { i, gen: 1 }])));
      let rows = await store.readPartition('baselines', 'big');
      expect(rows.size).toBe(250);
      expect(rows.get('Microsoft.Op/249')).toStrictEqual({ i: 249, gen: 1 });

      await store.updatePartition(
        'baselines',
        'big',
        (cur) => new Map([...cur].map(([k, e]) => [k, { ...e, gen: 2 }] as [string, Entity])),
      );
      rows = await store.readPartition('baselines', 'big');
      expect([...rows.values()].every((e) => e.gen === 2)).toBe(true);

      await store.updatePartition(
        'baselines',
        'big',
        () => new Map(keys.slice(0, 220).map((k) => [k, null])),
      );
      rows = await store.readPartition('baselines', 'big');
      expect(sortedKeys(rows)).toStrictEqual(keys.slice(220).sort());
    });

    it('deletes rows with null and ignores deletes of rows that do not exist', async () => {
      await store.updatePartition('alerts', 'p', put({ a: { v: 1 }, b: { v: 2 } }));
      await store.updatePartition('alerts', 'p', put({ a: null, ghost: null }));
      expect(await store.readPartition('alerts', 'p')).toStrictEqual(new Map([['b', { v: 2 }]]));
      await store.updatePartition('alerts', 'p', put({ b: null }));
      expect(await store.readPartition('alerts', 'p')).toStrictEqual(new Map());
      expect(await store.listPartitions('alerts')).toStrictEqual([]);
    });

    it('writes nothing when apply returns an empty map', async () => {
      await store.updatePartition('state', 'p', put({ r: { v: 1 } }));
      let calls = 0;
      let seen: ReadonlyMap<string, Entity> | undefined;
      await store.updatePartition('state', 'p', (cur) => {
        calls++;
        seen = cur;
        return new Map();
      });
      expect(calls).toBe(1);
      expect(seen).toStrictEqual(new Map([['r', { v: 1 }]]));
      expect(await store.readPartition('state', 'p')).toStrictEqual(new Map([['r', { v: 1 }]]));
      // Also on an empty partition: no row and no partition appear.
      await store.updatePartition('state', 'empty', () => new Map());
      expect(await store.listPartitions('state')).toStrictEqual(['p']);
    });

    it('counts an (operation, city, hour) once however often the idempotent update is re-run', async () => {
      const rows = ['Paris', 'Lyon'];
      for (let i = 0; i < 3; i++)
        await store.updatePartition('baselines', 'Microsoft.Op/write', countHour(rows, 'h1'));
      await store.updatePartition('baselines', 'Microsoft.Op/write', countHour(['Paris'], 'h2'));
      await store.updatePartition('baselines', 'Microsoft.Op/write', countHour(['Paris'], 'h2'));
      const read = await store.readPartition('baselines', 'Microsoft.Op/write');
      expect(read.get('Paris')).toStrictEqual({ count: 2, hours: 'h1,h2' });
      expect(read.get('Lyon')).toStrictEqual({ count: 1, hours: 'h1' });
    });

    it('loses no increment when two store instances write the same row concurrently', async () => {
      const peer = await fx.openPeer();
      const burst = (s: BaselineStore): Promise<void>[] =>
        Array.from({ length: 20 }, () => s.updatePartition('tenant', 'cities', increment('hot')));
      // Interleave both instances' calls so that they really race each other.
      const a = burst(store);
      const b = burst(peer);
      await Promise.all([...a, ...b]);

      expect((await store.readRows('tenant', 'cities', ['hot'])).get('hot')).toStrictEqual({ count: 40 });
      if (fx.conflictRetries !== undefined) {
        // Otherwise the test would pass without ever exercising the retry path.
        expect(fx.conflictRetries()).toBeGreaterThan(0);
      }
    });

    it('readRows returns only the rows that exist', async () => {
      await store.updatePartition('alerts', 'caller', put({ Paris: { n: 1 }, Lyon: { n: 2 } }));
      expect(await store.readRows('alerts', 'caller', ['Paris', 'Nice', 'Paris'])).toStrictEqual(
        new Map([['Paris', { n: 1 }]]),
      );
      expect(await store.readRows('alerts', 'caller', [])).toStrictEqual(new Map());
      expect(await store.readRows('alerts', 'nobody', ['Paris'])).toStrictEqual(new Map());
    });

    it('updateRows passes only the listed rows and refuses writes to other rows', async () => {
      await store.updatePartition('state', 'checkpoint', put({ main: { at: 1 }, other: { at: 9 } }));
      let seen: string[] = [];
      await store.updateRows('state', 'checkpoint', ['main', 'new'], (cur) => {
        seen = sortedKeys(cur);
        return new Map([
          ['main', { at: 2 }],
          ['new', { at: 3 }],
        ]);
      });
      expect(seen).toStrictEqual(['main']);
      await expect(
        store.updateRows('state', 'checkpoint', ['main'], () => new Map([['other', { at: 0 }]])),
      ).rejects.toThrow(InvalidEntityError);
      expect(await store.readPartition('state', 'checkpoint')).toStrictEqual(
        new Map([
          ['main', { at: 2 }],
          ['new', { at: 3 }],
          ['other', { at: 9 }],
        ]),
      );
    });

    it('rejects rows Table Storage cannot hold, writing nothing of that update', async () => {
      const invalid: [string, Entity][] = [
        ['bad name', { 'not-an-identifier': 1 }],
        ['reserved', { _rk: 'x' }],
        ['system', { PartitionKey: 'x' }],
        ['NaN', { v: Number.NaN }],
        ['Infinity', { v: Number.POSITIVE_INFINITY }],
        ['object', { v: { nested: 1 } as unknown as string }],
        ['null', { v: null as unknown as string }],
        ['long string', { v: 'x'.repeat(32 * 1024 + 1) }],
        ['lone surrogate', { v: '\ud800' }],
      ];
      for (const [label, entity] of invalid) {
        const attempt = store.updatePartition('state', 'p', put({ fine: { v: 1 }, [label]: entity }));
        await expect(attempt, label).rejects.toThrow(InvalidEntityError);
      }
      expect(await store.readPartition('state', 'p')).toStrictEqual(new Map());
    });

    it('propagates an exception from apply and writes nothing', async () => {
      await expect(
        store.updatePartition('state', 'p', () => {
          throw new Error('apply failed');
        }),
      ).rejects.toThrow('apply failed');
      expect(await store.readPartition('state', 'p')).toStrictEqual(new Map());
    });

    it('lists every partition holding rows', async () => {
      expect(await store.listPartitions('baselines')).toStrictEqual([]);
      const partitions = ['Microsoft.A/x', 'Microsoft.B/y', 'b', 'a'];
      for (const p of partitions)
        await store.updatePartition('baselines', p, put({ r1: { v: 1 }, r2: { v: 2 } }));
      expect((await store.listPartitions('baselines')).sort()).toStrictEqual([...partitions].sort());
      expect(await store.listPartitions('tenant')).toStrictEqual([]);
    });

    it('updates 1,000 rows of one partition (timing is logged)', async () => {
      const keys = Array.from({ length: 1000 }, (_, i) => `city-${i}`);
      const started = performance.now();
      await store.updatePartition('baselines', 'thousand', countHour(keys, 'h1'));
      const created = performance.now();
      await store.updatePartition('baselines', 'thousand', countHour(keys, 'h2'));
      const updated = performance.now();
      const rows = await store.readPartition('baselines', 'thousand');
      const read = performance.now();
      expect(rows.size).toBe(1000);
      expect([...rows.values()].every((e) => e.count === 2)).toBe(true);
      console.info(
        `[${name}] 1,000 rows: create ${(created - started).toFixed(0)} ms, ` +
          `update ${(updated - created).toFixed(0)} ms, read ${(read - updated).toFixed(0)} ms`,
      );
    });
  });
}
