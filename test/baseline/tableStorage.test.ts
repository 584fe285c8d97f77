import { randomBytes } from 'node:crypto';

import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Entity, StoreConflictError } from '../../shared/baseline/store.js';
import {
  TableStorageStore,
  type TableStorageStoreOptions,
  type TransactionContext,
} from '../../shared/baseline/tableStorage.js';
import { type AzuriteTables, startAzurite } from '../support/azurite.js';
import { countHour, increment, storeContract } from './contract.js';

// One in-memory Azurite per test file; every test uses its own table prefix, so no state leaks between tests.
let azurite: AzuriteTables;
beforeAll(async () => {
  azurite = await startAzurite();
});
afterAll(async () => {
  await azurite?.stop();
});

const uniquePrefix = (): string => `t${randomBytes(6).toString('hex')}`;

function open(
  tablePrefix: string,
  extra: Partial<TableStorageStoreOptions> = {},
): Promise<TableStorageStore> {
  return TableStorageStore.open({
    endpoint: azurite.endpoint,
    credential: azurite.credential,
    tablePrefix,
    allowInsecureConnection: true,
    ...extra,
  });
}

function rawClient(table: string): TableClient {
  return new TableClient(azurite.endpoint, table, azurite.credential, { allowInsecureConnection: true });
}

storeContract('Table Storage (Azurite)', async () => {
  const prefix = uniquePrefix();
  // 40 writers racing for one row need more rounds than production's default of 8.
  const stores = [await open(prefix, { maxConflictRetries: 100 })];
  const store = stores[0]!;
  return {
    store,
    openPeer: async () => {
      const peer = await open(prefix, { maxConflictRetries: 100 });
      stores.push(peer);
      return peer;
    },
    writeForeignRow: async (table, partition, rowKey, count, label) => {
      // The raw SDK sends a bigint as Edm.Int64, which it also reads back as bigint.
      await rawClient(store.tableNames[table]).createEntity({
        partitionKey: partition,
        rowKey,
        count,
        label,
      });
    },
    conflictRetries: () => stores.reduce((sum, s) => sum + s.conflictRetries, 0),
    cleanup: async () => {
      for (const s of stores) await s.close();
    },
  };
});

describe('TableStorageStore', () => {
  it('validates the table prefix with a clear error', async () => {
    for (const bad of ['', '1abc', 'with-dash', 'under_score', 'x'.repeat(55)]) {
      await expect(open(bad), bad).rejects.toThrow(/Invalid tablePrefix/);
    }
    const store = await open('x'.repeat(54)); // 54 + 'Baselines' = 63 characters, the maximum
    expect(store.tableNames.baselines).toHaveLength(63);
  });

  it('creates the five tables, tolerates existing ones, and can skip creation', async () => {
    const prefix = uniquePrefix();
    const first = await open(prefix);
    expect(first.tableNames).toStrictEqual({
      baselines: `${prefix}Baselines`,
      tenant: `${prefix}Tenant`,
      alerts: `${prefix}Alerts`,
      state: `${prefix}State`,
      outbox: `${prefix}Outbox`,
    });
    await open(prefix); // tables exist now: no error
    const noCreate = await open(uniquePrefix(), { createTables: false });
    await expect(noCreate.readPartition('state', 'p')).rejects.toThrow(/State.*404/);
    await expect(noCreate.readRows('state', 'p', ['r'])).rejects.toThrow(/State.*404/);
  });

  it('stores encoded keys, the logical keys in _pk/_rk, and every number as Edm.Double', async () => {
    const store = await open(uniquePrefix());
    await store.updatePartition('baselines', 'Microsoft.Compute/virtualMachines/write', () => {
      return new Map([['Paris/FR', { n: 3, x: 0.5, name: 'Paris' }]]);
    });
    const raw = rawClient(store.tableNames.baselines);
    // The SDK cannot tell Double 3.0 from Int32 3 after parsing, so look at the service's JSON itself.
    let body = '';
    raw.pipeline.addPolicy({
      name: 'captureBody',
      sendRequest: async (request, next) => {
        const response = await next(request);
        body = response.bodyAsText ?? '';
        return response;
      },
    });
    const entities = [];
    for await (const e of raw.listEntities()) entities.push(e);
    expect(entities).toHaveLength(1);
    expect(entities[0]).toMatchObject({
      partitionKey: 'Microsoft.Compute!2FvirtualMachines!2Fwrite',
      rowKey: 'Paris!2FFR',
      _pk: 'Microsoft.Compute/virtualMachines/write',
      _rk: 'Paris/FR',
      name: 'Paris',
    });
    expect(body).toContain('"n":3.0');
    expect(body).toContain('"x":0.5');
  });

  it('converts Int64, DateTime, Guid and Binary properties written by other tools into scalars', async () => {
    const store = await open(uniquePrefix());
    const at = new Date('2024-05-06T07:08:09.123Z');
    await rawClient(store.tableNames.state).createEntity({
      partitionKey: 'foreign',
      rowKey: 'Paris!2FFR', // our encoding, but no _rk property: decoded on read
      big: 1_733_000_000_123n,
      at,
      id: { value: '3f2504e0-4f89-11d3-9a0c-0305e82c3301', type: 'Guid' },
      bytes: new Uint8Array([1, 2, 3]),
    });
    expect((await store.readPartition('state', 'foreign')).get('Paris/FR')).toStrictEqual({
      big: 1_733_000_000_123,
      at: '2024-05-06T07:08:09.123Z',
      id: '3f2504e0-4f89-11d3-9a0c-0305e82c3301',
      bytes: 'AQID',
    });
    expect(await store.listPartitions('state')).toStrictEqual(['foreign']);
  });

  it('gives up with StoreConflictError when maxConflictRetries is 0 and a concurrent writer wins', async () => {
    const prefix = uniquePrefix();
    const rival = await open(prefix);
    const store = await open(prefix, {
      maxConflictRetries: 0,
      testHooks: {
        // Between our read and our write, another instance updates the row: our ETag is now stale.
        beforeTransaction: () => rival.updatePartition('state', 'p', increment('r')),
      },
    });
    await rival.updatePartition('state', 'p', increment('r'));

    const error = await store.updatePartition('state', 'p', increment('r')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreConflictError);
    expect(error).toMatchObject({ table: 'state', partition: 'p', attempts: 1 });
    // The partition by tag, never by key (keys may be callers: issue 14).
    expect((error as Error).message).toMatch(/state\/#[0-9a-f]{12} /);

    expect(store.conflictRetries).toBe(0);
    expect((await rival.readRows('state', 'p', ['r'])).get('r')).toStrictEqual({ count: 2 });
  });

  it('retries a conflict: re-reads and re-applies on top of the concurrent write', async () => {
    const prefix = uniquePrefix();
    const rival = await open(prefix);
    let interfered = false;
    const store = await open(prefix, {
      testHooks: {
        beforeTransaction: async () => {
          if (interfered) return;
          interfered = true;
          await rival.updatePartition('state', 'p', increment('r'));
        },
      },
    });
    let calls = 0;
    await store.updatePartition('state', 'p', (cur) => {
      calls++;
      return increment('r')(cur);
    });
    expect(calls).toBe(2);
    expect(store.conflictRetries).toBe(1);
    expect((await store.readRows('state', 'p', ['r'])).get('r')).toStrictEqual({ count: 2 });
  });

  it('conditions deletes on the ETag read: a row updated concurrently is not deleted blindly', async () => {
    const prefix = uniquePrefix();
    const rival = await open(prefix);
    await rival.updatePartition('alerts', 'p', () => new Map([['stale', { count: 1 }]]));
    let interfered = false;
    const store = await open(prefix, {
      testHooks: {
        beforeTransaction: async () => {
          if (interfered) return;
          interfered = true;
          // The row becomes active again while we are about to prune it.
          await rival.updatePartition('alerts', 'p', () => new Map([['stale', { count: 10 }]]));
        },
      },
    });
    // Prune rows with a small count.
    await store.updatePartition('alerts', 'p', (cur) => {
      const changes = new Map<string, Entity | null>();
      for (const [k, e] of cur) if (typeof e.count === 'number' && e.count < 5) changes.set(k, null);
      return changes;
    });
    expect(store.conflictRetries).toBe(1);
    expect(await store.readPartition('alerts', 'p')).toStrictEqual(new Map([['stale', { count: 10 }]]));
  });

  it('treats a concurrent create and a concurrent delete as conflicts too', async () => {
    const prefix = uniquePrefix();
    const rival = await open(prefix);
    await rival.updatePartition('state', 'p', () => new Map([['gone', { v: 1 }]]));
    const interference = [
      () => rival.updatePartition('state', 'p', () => new Map([['new', { v: 100 }]])), // 409 on our create
      () => rival.updatePartition('state', 'p', () => new Map([['gone', null]])), // 404 on our update
    ];
    const store = await open(prefix, {
      testHooks: { beforeTransaction: async () => interference.shift()?.() },
    });
    await store.updatePartition('state', 'p', (cur) => {
      const changes = new Map<string, Entity>();
      changes.set('new', { v: ((cur.get('new')?.v as number | undefined) ?? 0) + 1 });
      if (cur.has('gone')) changes.set('gone', { v: 2 });
      return changes;
    });
    expect(store.conflictRetries).toBe(2);
    expect(await store.readPartition('state', 'p')).toStrictEqual(new Map([['new', { v: 101 }]]));
  });

  it('converges after a crash between transactions when the idempotent update is re-run', async () => {
    const prefix = uniquePrefix();
    const rows = Array.from({ length: 250 }, (_, i) => `Microsoft.Op/city-${i}`);
    const expired = Array.from({ length: 30 }, (_, i) => `expired-${i}`);
    const fresh = Array.from({ length: 50 }, (_, i) => `fresh-${i}`);
    // Counts hour h2 for existing rows, creates new rows, deletes expired ones: 330 changes, 4 transactions.
    const update = (cur: ReadonlyMap<string, Entity>): Map<string, Entity | null> => {
      const changes: Map<string, Entity | null> = countHour([...rows, ...fresh], 'h2')(cur);
      for (const k of expired) if (cur.has(k)) changes.set(k, null);
      return changes;
    };
    const seed = async (store: TableStorageStore, partition: string): Promise<void> => {
      await store.updatePartition('baselines', partition, countHour(rows, 'h1'));
      await store.updatePartition(
        'baselines',
        partition,
        () => new Map(expired.map((k) => [k, { old: true }])),
      );
    };

    const reference = await open(prefix);
    await seed(reference, 'uninterrupted');
    await reference.updatePartition('baselines', 'uninterrupted', update);

    const transactions: TransactionContext[] = [];
    const crashing = await open(prefix, {
      testHooks: {
        beforeTransaction: (ctx) => {
          transactions.push(ctx);
          if (ctx.partition === 'crashed' && ctx.index === 1) throw new Error('simulated crash');
        },
      },
    });
    await seed(reference, 'crashed');
    await expect(crashing.updatePartition('baselines', 'crashed', update)).rejects.toThrow('simulated crash');
    expect(
      transactions.filter((t) => t.partition === 'crashed').map((t) => [t.index, t.count]),
    ).toStrictEqual([
      [0, 4],
      [1, 4],
    ]);
    const halfway = await reference.readPartition('baselines', 'crashed');
    expect([...halfway.values()].filter((e) => e.count === 2)).toHaveLength(100); // exactly one transaction

    await reference.updatePartition('baselines', 'crashed', update); // the re-run after restart
    await reference.updatePartition('baselines', 'crashed', update); // and a redundant one changes nothing
    const expected = await reference.readPartition('baselines', 'uninterrupted');
    expect(expected.size).toBe(300);
    expect(await reference.readPartition('baselines', 'crashed')).toStrictEqual(expected);
  });

  it('sends at most 100 actions per transaction', async () => {
    const sizes: number[] = [];
    const store = await open(uniquePrefix(), {
      testHooks: { beforeTransaction: (ctx) => void sizes.push(ctx.actions) },
    });
    await store.updatePartition(
      'baselines',
      'p',
      () => new Map(Array.from({ length: 201 }, (_, i) => [`r${i}`, { i }])),
    );
    expect(sizes).toStrictEqual([100, 100, 1]);
    expect((await store.readPartition('baselines', 'p')).size).toBe(201);
  });

  it('reads only its own partition even when the key looks like an OData injection', async () => {
    const store = await open(uniquePrefix());
    await store.updatePartition('state', "a' or PartitionKey ne '", () => new Map([['r', { v: 1 }]]));
    await store.updatePartition('state', 'other', () => new Map([['r', { v: 2 }]]));
    expect(await store.readPartition('state', "a' or PartitionKey ne '")).toStrictEqual(
      new Map([['r', { v: 1 }]]),
    );
  });

  it('refuses to be used after close', async () => {
    const store = await open(uniquePrefix());
    await store.close();
    await expect(store.readPartition('state', 'p')).rejects.toThrow(/closed/);
  });
});
