/**
 * RunState (shared/pipeline/runState.ts) over both store adapters: the rows it writes and reads are the ones the
 * detector has always kept (partition and row keys, properties), so a store written before it existed reads
 * the same; and the rules of the rows hold (a checkpoint never moves back, a tick keeps how it was first
 * enqueued, one finalizer per tick, the checkpoint over complete ticks only).
 */
import { randomUUID } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SqliteStore } from '../../shared/baseline/sqlite.js';
import type { BaselineStore, Entity } from '../../shared/baseline/store.js';
import { TableStorageStore } from '../../shared/baseline/tableStorage.js';
import { type BootstrapStatus, runStateOf, type ShardTick } from '../../shared/pipeline/runState.js';
import { type AzuriteTables, startAzurite } from '../support/azurite.js';

const MIN = 60_000;
const T = Date.UTC(2026, 10, 2, 9, 0);

let azurite: AzuriteTables;
beforeAll(async () => {
  azurite = await startAzurite();
});
afterAll(async () => {
  await azurite.stop();
});

const adapters: [string, () => Promise<BaselineStore>][] = [
  ['SQLite', () => Promise.resolve(SqliteStore.open(':memory:'))],
  [
    'Table Storage (Azurite)',
    () =>
      TableStorageStore.open({
        endpoint: azurite.endpoint,
        credential: azurite.credential,
        tablePrefix: `rs${randomUUID().replace(/-/g, '').slice(0, 12)}`,
        allowInsecureConnection: true,
      }),
  ],
];

/** A row as stored (the assertions match properties, so an adapter's own, e.g. the ETag, do not count). */
async function row(store: BaselineStore, partition: string, key: string): Promise<Entity | undefined> {
  return (await store.readRows('state', partition, [key])).get(key);
}

const put = (store: BaselineStore, partition: string, key: string, e: Entity) =>
  store.updateRows('state', partition, [key], () => new Map([[key, e]]));

const status = (over: Partial<BootstrapStatus>): BootstrapStatus => ({
  id: 'b1',
  state: 'running',
  phase: 'counting',
  source: 'files',
  days: 2,
  startMs: T - 2 * 1440 * MIN,
  endMs: T,
  windowMs: 1440 * MIN,
  doneUntilMs: T - 1440 * MIN,
  windowsDone: 1,
  windowsTotal: 2,
  groups: 10,
  events: 20,
  observations: 5,
  rareFindings: 1,
  rebuild: false,
  requestedBy: 'ops@example.com',
  reason: 'first deploy',
  createdMs: T,
  updatedMs: T,
  finishedMs: 0,
  graceUntilMs: T,
  owner: 'cli:host:1',
  leaseUntilMs: T + 5 * MIN,
  lastError: '',
  ...over,
});

describe.each(adapters)('RunState over %s', (_name, open) => {
  it('the checkpoint: row checkpoint/main, 0 when absent, never backwards', async () => {
    const store = await open();
    const state = runStateOf(store);
    expect(await state.checkpoint()).toBe(0);
    await state.commitCheckpoint(T);
    await state.commitCheckpoint(T - 15 * MIN);
    expect(await row(store, 'checkpoint', 'main')).toMatchObject({
      lastTickMs: T,
      updatedAt: new Date(T).toISOString(),
    });
    await put(store, 'checkpoint', 'main', { lastTickMs: T + 15 * MIN, updatedAt: 'written before' });
    expect(await state.checkpoint()).toBe(T + 15 * MIN);
    await store.close();
  });

  it('the gate: empty, then ready from a checkpoint, a first counted hour or any bootstrap; a running one says so', async () => {
    const store = await open();
    const state = runStateOf(store);
    expect(await state.gate()).toEqual({ baseline: 'empty' });
    await store.updateRows('tenant', 'cities', ['~tenant'], () => new Map([['~tenant', { firstSeenMs: T }]]));
    expect(await state.learned()).toEqual({ checkpointMs: 0, firstSeenMs: T });
    expect(await state.gate()).toEqual({ baseline: 'ready' });

    const other = await open();
    await runStateOf(other).commitCheckpoint(T);
    expect(await runStateOf(other).gate()).toEqual({ baseline: 'ready' });
    await other.close();

    // A status row as the bootstrap has always written it.
    await put(store, 'bootstrap', 'status', { ...status({}) });
    expect(await state.bootstrapPending()).toBe(true);
    expect(await state.gate()).toEqual({ baseline: 'bootstrapping', status: status({}) });
    await put(store, 'bootstrap', 'status', { ...status({ state: 'done', phase: 'done' }) });
    expect(await state.bootstrapPending()).toBe(false);
    expect(await state.gate()).toEqual({
      baseline: 'ready',
      status: status({ state: 'done', phase: 'done' }),
    });
    await store.close();
  });

  it('the bootstrap status: read-modify-write of bootstrap/status, the error cut to 4000 characters', async () => {
    const store = await open();
    const state = runStateOf(store);
    expect(await state.bootstrap()).toBeUndefined();
    expect(await state.updateBootstrap(() => undefined)).toBeUndefined();
    const written = await state.updateBootstrap(() => status({ lastError: 'x'.repeat(5000) }));
    expect(written?.lastError).toHaveLength(5000);
    expect(await row(store, 'bootstrap', 'status')).toMatchObject({
      ...status({}),
      lastError: 'x'.repeat(4000),
    });
    const kept = await state.updateBootstrap((cur) => (cur?.state === 'running' ? undefined : status({})));
    expect(kept).toEqual(status({ lastError: 'x'.repeat(4000) }));
    await store.close();
  });

  it('shard progress: the enqueue pointer, the tick row, completion rows and one finalizer', async () => {
    const store = await open();
    const state = runStateOf(store);
    expect(await state.enqueued()).toEqual({ firstTickMs: 0, lastTickMs: 0 });
    await state.markEnqueued(T);
    await state.markEnqueued(T + 15 * MIN);
    await state.markEnqueued(T);
    expect(await row(store, 'checkpoint', 'enqueued')).toMatchObject({
      firstTickMs: T,
      lastTickMs: T + 15 * MIN,
    });

    const first = { shards: 2, windowStartMs: T - 15 * MIN, windowEndMs: T, assignment: 2 };
    expect(await state.recordEnqueue(T, first, T + MIN)).toEqual(first);
    // Enqueued again with other settings: the tick keeps how it was first recorded.
    const again = { shards: 4, windowStartMs: T - 30 * MIN, windowEndMs: T, assignment: 2 };
    expect(await state.recordEnqueue(T, again, T + 2 * MIN)).toEqual(first);
    expect(await row(store, 'shards:' + T, 'tick')).toMatchObject({
      ...first,
      enqueuedAtMs: T + 2 * MIN,
      enqueues: 2,
      finalizedAtMs: 0,
    });
    // A tick recorded before assignments were recorded was enqueued with assignment 1.
    await put(store, `shards:${T + 15 * MIN}`, 'tick', {
      shards: 2,
      windowStartMs: T,
      windowEndMs: T + 15 * MIN,
    });
    expect((await state.recordEnqueue(T + 15 * MIN, first, T)).assignment).toBe(1);

    await state.markShardDone(T, 1, { doneAtMs: T + 3 * MIN });
    expect(await row(store, `shards:${T}`, 's1')).toMatchObject({ doneAtMs: T + 3 * MIN });
    const progress = (await state.shardProgress(T))!;
    expect([...progress.done]).toEqual([1]);
    expect(progress).toMatchObject({ shards: 2, enqueues: 2, finalizedAtMs: 0 });
    expect(await state.shardProgress(T + 30 * MIN)).toBeUndefined();

    expect(await state.claimFinalize(T, T + 4 * MIN)).toBe(true);
    expect(await state.claimFinalize(T, T + 5 * MIN)).toBe(false);
    expect((await state.shardProgress(T))!.finalizedAtMs).toBe(T + 4 * MIN);
    await store.close();
  });

  it('the checkpoint moves over complete ticks in order and stops at the first incomplete one', async () => {
    const store = await open();
    const state = runStateOf(store);
    const tick = (i: number) => T + i * 15 * MIN;
    const done = (i: number, shards: number[]) =>
      Promise.all(shards.map((s) => put(store, `shards:${tick(i)}`, `s${s}`, { doneAtMs: tick(i) })));
    for (let i = 0; i < 4; i++) {
      await state.recordEnqueue(
        tick(i),
        { shards: 2, windowStartMs: 0, windowEndMs: tick(i), assignment: 2 },
        T,
      );
      await state.markEnqueued(tick(i));
    }
    await done(0, [0, 1]);
    await done(1, [0]);
    await done(2, [0, 1]);
    const waiting: [number, ShardTick | undefined][] = [];
    const checkpointed = await state.advanceShardCheckpoint(15 * MIN, (t, r) => {
      waiting.push([t, r]);
      return Promise.resolve();
    });
    expect(checkpointed).toEqual([tick(0)]);
    expect(await state.checkpoint()).toBe(tick(0));
    expect(waiting.map(([t]) => t)).toEqual([tick(1), tick(3)]);
    expect([...waiting[0]![1]!.done]).toEqual([0]);

    await done(1, [1]);
    await done(3, [0, 1]);
    expect(await state.advanceShardCheckpoint(15 * MIN, () => Promise.resolve())).toEqual([
      tick(1),
      tick(2),
      tick(3),
    ]);
    expect(await state.checkpoint()).toBe(tick(3));
    await store.close();
  });
});
