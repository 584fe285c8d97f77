/**
 * Run state: where a detector stands, in one place. Every row lives in the `state` table of the
 * {@link BaselineStore} (plus one read of the tenant's summary row, to tell empty baselines from learned ones):
 *
 * - the **checkpoint**, the last tick fully processed: `state`/`checkpoint`/`main` (`lastTickMs`, `updatedAt`);
 * - the **baseline gate**, from the bootstrap status row `state`/`bootstrap`/`status` ({@link BootstrapStatus},
 *   written under a lease by shared/ops/bootstrap.ts) and what the detector has learned;
 * - **shard progress** in queue mode: the enqueue pointer `state`/`checkpoint`/`enqueued` and, per tick,
 *   the partition `shards:<tick>` with its tick row `tick` and one completion row `s<index>` per shard done.
 *
 * The timer (shared/runtime/detector.ts), the shard worker (shared/runtime/shards.ts), the bootstrap
 * (shared/ops/bootstrap.ts) and the replay (shared/pipeline/replay.ts) go through {@link RunState}; the policy
 * (when to run a bootstrap, what to enqueue, what to log) stays with them.
 */
import type { BaselineStore, Entity } from '../baseline/store.js';
import { CHECKPOINT_PARTITION, CHECKPOINT_ROW, TENANT_PARTITION, TENANT_SUMMARY_ROW } from './state.js';

export const BOOTSTRAP_PARTITION = 'bootstrap';
export const BOOTSTRAP_ROW = 'status';
const TICK_ROW = 'tick';
const POINTER_PARTITION = CHECKPOINT_PARTITION;
const POINTER_ROW = 'enqueued';
export const shardsPartition = (tickMs: number): string => `shards:${tickMs}`;
export const shardRow = (shard: number): string => `s${shard}`;

export type BootstrapState = 'running' | 'done' | 'cancelled';
export type BootstrapPhase = 'clearing' | 'counting' | 'done';

/** The status row (table 'state', partition 'bootstrap', row 'status'). Times are epoch milliseconds. */
export interface BootstrapStatus {
  id: string;
  state: BootstrapState;
  phase: BootstrapPhase;
  source: 'log-analytics' | 'files';
  days: number;
  /** History period [startMs, endMs); endMs becomes the checkpoint. */
  startMs: number;
  endMs: number;
  windowMs: number;
  /** History is counted up to here. */
  doneUntilMs: number;
  windowsDone: number;
  windowsTotal: number;
  groups: number;
  events: number;
  observations: number;
  /** Findings history held at or above the threshold (never alerted). */
  rareFindings: number;
  /** Existing baselines were cleared first (learned hours lie inside the period and are counted again). */
  rebuild: boolean;
  requestedBy: string;
  reason: string;
  createdMs: number;
  updatedMs: number;
  finishedMs: number;
  /** Clearing waits until then (a detection run may still be finishing its tick). */
  graceUntilMs: number;
  owner: string;
  leaseUntilMs: number;
  lastError: string;
}

export type BaselineCondition = 'ready' | 'empty' | 'bootstrapping';

/** What the rows say before a run: `bootstrapping` means a bootstrap is running and must be continued first. */
export interface GateReading {
  baseline: BaselineCondition;
  status?: BootstrapStatus;
}

/** A tick of queue mode as its rows record it: how it was enqueued, and which shards are done. */
export interface ShardTick {
  shards: number;
  windowStartMs: number;
  windowEndMs: number;
  enqueuedAtMs: number;
  enqueues: number;
  finalizedAtMs: number;
  done: Set<number>;
}

/** How a tick's shards are to be sent: as first recorded (a tick keeps its shard count, window, assignment). */
export interface EnqueueRecord {
  shards: number;
  windowStartMs: number;
  windowEndMs: number;
  assignment: number;
}

/** Where a detector stands: checkpoint, baseline gate and shard progress (see the module comment). */
export interface RunState {
  /** The last tick that completed (0 when none). */
  checkpoint(): Promise<number>;
  /** Records a completed tick; never moves the checkpoint backwards. */
  commitCheckpoint(tickMs: number): Promise<void>;
  /** The bootstrap status, or undefined when none was ever started. */
  bootstrap(): Promise<BootstrapStatus | undefined>;
  /** True while a bootstrap is unfinished: detection must wait for it. */
  bootstrapPending(): Promise<boolean>;
  /**
   * Read-modify-write of the bootstrap status with optimistic concurrency. `fn` returns the new status, or
   * undefined to leave the row as it is; the result is the row as written (or as found).
   */
  updateBootstrap(
    fn: (cur: BootstrapStatus | undefined) => BootstrapStatus | undefined,
  ): Promise<BootstrapStatus | undefined>;
  /** What the detector has learned so far: its checkpoint and the tenant's first counted hour (0: none). */
  learned(): Promise<{ checkpointMs: number; firstSeenMs: number }>;
  /** The baselines' condition before a run: a running bootstrap, any bootstrap or anything learned, or empty. */
  gate(): Promise<GateReading>;
  /** Queue mode: the first and last tick ever enqueued (0 when none). */
  enqueued(): Promise<{ firstTickMs: number; lastTickMs: number }>;
  /** Queue mode: moves the enqueue pointer to a tick (never backwards). */
  markEnqueued(tickMs: number): Promise<void>;
  /** Queue mode: a tick's record and completed shards; undefined when never enqueued. */
  shardProgress(tickMs: number): Promise<ShardTick | undefined>;
  /** Queue mode: records an enqueue of a tick (count, time); the record its shards must be sent with. */
  recordEnqueue(tickMs: number, first: EnqueueRecord, nowMs: number): Promise<EnqueueRecord>;
  /** Queue mode: a shard's completion row (only then can the checkpoint count on it). */
  markShardDone(tickMs: number, shard: number, row: Entity): Promise<void>;
  /** Queue mode: marks a tick finalized; true for the one caller whose conditional write won. */
  claimFinalize(tickMs: number, nowMs: number): Promise<boolean>;
  /**
   * Queue mode: moves the checkpoint over every complete tick after it, in order, up to the enqueue pointer;
   * every tick not complete is handed to `waiting` (in order, as it is met). Returns the ticks checkpointed.
   */
  advanceShardCheckpoint(
    intervalMs: number,
    waiting: (tickMs: number, record: ShardTick | undefined) => Promise<void>,
  ): Promise<number[]>;
}

/** The run state kept in a store. */
export function runStateOf(store: BaselineStore): RunState {
  const state: RunState = {
    checkpoint: () => readCheckpoint(store),
    commitCheckpoint: (tickMs) => commitCheckpoint(store, tickMs),
    bootstrap: () => readBootstrap(store),
    bootstrapPending: async () => (await readBootstrap(store))?.state === 'running',
    updateBootstrap: (fn) => updateBootstrap(store, fn),
    learned: () => learned(store),
    gate: () => gate(state),
    enqueued: () => readPointer(store),
    markEnqueued: (tickMs) => advancePointer(store, tickMs),
    shardProgress: async (tickMs) => shardTickOf(await store.readPartition('state', shardsPartition(tickMs))),
    recordEnqueue: (tickMs, first, nowMs) => recordEnqueue(store, tickMs, first, nowMs),
    markShardDone: (tickMs, shard, row) =>
      store.updateRows(
        'state',
        shardsPartition(tickMs),
        [shardRow(shard)],
        () => new Map([[shardRow(shard), row]]),
      ),
    claimFinalize: (tickMs, nowMs) => claimFinalize(store, tickMs, nowMs),
    advanceShardCheckpoint: (intervalMs, waiting) => advanceShardCheckpoint(state, intervalMs, waiting),
  };
  return state;
}

/** The last tick that completed (0 when none); the same as `runStateOf(store).checkpoint()`. */
export async function readCheckpoint(store: BaselineStore): Promise<number> {
  const rows = await store.readRows('state', CHECKPOINT_PARTITION, [CHECKPOINT_ROW]);
  const v = rows.get(CHECKPOINT_ROW)?.lastTickMs;
  return typeof v === 'number' ? v : 0;
}

/** Records a completed tick, never backwards; the same as `runStateOf(store).commitCheckpoint(tickMs)`. */
export async function commitCheckpoint(store: BaselineStore, tickMs: number): Promise<void> {
  await store.updateRows('state', CHECKPOINT_PARTITION, [CHECKPOINT_ROW], (cur) => {
    const prev = cur.get(CHECKPOINT_ROW)?.lastTickMs;
    if (typeof prev === 'number' && prev >= tickMs) return new Map();
    return new Map([[CHECKPOINT_ROW, { lastTickMs: tickMs, updatedAt: new Date(tickMs).toISOString() }]]);
  });
}

const num = (e: Entity, k: string): number => (typeof e[k] === 'number' ? e[k] : 0);
const str = (e: Entity, k: string): string => (typeof e[k] === 'string' ? e[k] : '');

function bootstrapFromEntity(e: Entity): BootstrapStatus {
  return {
    id: str(e, 'id'),
    state: str(e, 'state') as BootstrapState,
    phase: str(e, 'phase') as BootstrapPhase,
    source: str(e, 'source') === 'files' ? 'files' : 'log-analytics',
    days: num(e, 'days'),
    startMs: num(e, 'startMs'),
    endMs: num(e, 'endMs'),
    windowMs: num(e, 'windowMs'),
    doneUntilMs: num(e, 'doneUntilMs'),
    windowsDone: num(e, 'windowsDone'),
    windowsTotal: num(e, 'windowsTotal'),
    groups: num(e, 'groups'),
    events: num(e, 'events'),
    observations: num(e, 'observations'),
    rareFindings: num(e, 'rareFindings'),
    rebuild: e.rebuild === true,
    requestedBy: str(e, 'requestedBy'),
    reason: str(e, 'reason'),
    createdMs: num(e, 'createdMs'),
    updatedMs: num(e, 'updatedMs'),
    finishedMs: num(e, 'finishedMs'),
    graceUntilMs: num(e, 'graceUntilMs'),
    owner: str(e, 'owner'),
    leaseUntilMs: num(e, 'leaseUntilMs'),
    lastError: str(e, 'lastError'),
  };
}

function bootstrapToEntity(s: BootstrapStatus): Entity {
  // Table Storage limits strings to 32 K characters; an error message is never that useful.
  return { ...s, lastError: s.lastError.slice(0, 4000) };
}

/** The bootstrap status, undefined when none was ever started; the same as `runStateOf(store).bootstrap()`. */
export async function readBootstrap(store: BaselineStore): Promise<BootstrapStatus | undefined> {
  const rows = await store.readRows('state', BOOTSTRAP_PARTITION, [BOOTSTRAP_ROW]);
  const e = rows.get(BOOTSTRAP_ROW);
  return e ? bootstrapFromEntity(e) : undefined;
}

async function updateBootstrap(
  store: BaselineStore,
  fn: (cur: BootstrapStatus | undefined) => BootstrapStatus | undefined,
): Promise<BootstrapStatus | undefined> {
  let result: BootstrapStatus | undefined;
  await store.updateRows('state', BOOTSTRAP_PARTITION, [BOOTSTRAP_ROW], (rows) => {
    const e = rows.get(BOOTSTRAP_ROW);
    const cur = e ? bootstrapFromEntity(e) : undefined;
    const next = fn(cur);
    result = next ?? cur;
    return next === undefined
      ? new Map<string, Entity | null>()
      : new Map([[BOOTSTRAP_ROW, bootstrapToEntity(next)]]);
  });
  return result;
}

async function learned(store: BaselineStore): Promise<{ checkpointMs: number; firstSeenMs: number }> {
  const [checkpointMs, tenant] = await Promise.all([
    readCheckpoint(store),
    store.readRows('tenant', TENANT_PARTITION, [TENANT_SUMMARY_ROW]),
  ]);
  const v = tenant.get(TENANT_SUMMARY_ROW)?.firstSeenMs;
  return { checkpointMs, firstSeenMs: typeof v === 'number' ? v : 0 };
}

async function gate(state: RunState): Promise<GateReading> {
  const st = await state.bootstrap();
  if (st?.state === 'running') return { baseline: 'bootstrapping', status: st };
  if (st) return { baseline: 'ready', status: st };
  if ((await state.checkpoint()) > 0) return { baseline: 'ready' };
  if ((await state.learned()).firstSeenMs > 0) return { baseline: 'ready' };
  return { baseline: 'empty' };
}

async function readPointer(store: BaselineStore): Promise<{ firstTickMs: number; lastTickMs: number }> {
  const row = (await store.readRows('state', POINTER_PARTITION, [POINTER_ROW])).get(POINTER_ROW);
  const n = (k: string) => (typeof row?.[k] === 'number' ? row[k] : 0);
  return { firstTickMs: n('firstTickMs'), lastTickMs: n('lastTickMs') };
}

async function advancePointer(store: BaselineStore, tickMs: number): Promise<void> {
  await store.updateRows('state', POINTER_PARTITION, [POINTER_ROW], (cur) => {
    const row = cur.get(POINTER_ROW);
    const last = typeof row?.lastTickMs === 'number' ? row.lastTickMs : 0;
    if (last >= tickMs) return new Map<string, Entity | null>();
    const first = typeof row?.firstTickMs === 'number' && row.firstTickMs > 0 ? row.firstTickMs : tickMs;
    return new Map([[POINTER_ROW, { firstTickMs: first, lastTickMs: tickMs }]]);
  });
}

function shardTickOf(rows: ReadonlyMap<string, Entity>): ShardTick | undefined {
  const t = rows.get(TICK_ROW);
  if (t === undefined) return undefined;
  const done = new Set<number>();
  for (const key of rows.keys()) if (/^s\d+$/.test(key)) done.add(Number(key.slice(1)));
  return {
    shards: num(t, 'shards'),
    windowStartMs: num(t, 'windowStartMs'),
    windowEndMs: num(t, 'windowEndMs'),
    enqueuedAtMs: num(t, 'enqueuedAtMs'),
    enqueues: num(t, 'enqueues'),
    finalizedAtMs: num(t, 'finalizedAtMs'),
    done,
  };
}

/** Every shard of the tick has its completion row. */
export const shardTickComplete = (r: ShardTick | undefined): boolean =>
  r !== undefined && r.shards > 0 && [...Array(r.shards).keys()].every((i) => r.done.has(i));

async function recordEnqueue(
  store: BaselineStore,
  tickMs: number,
  first: EnqueueRecord,
  nowMs: number,
): Promise<EnqueueRecord> {
  let record = first;
  await store.updateRows('state', shardsPartition(tickMs), [TICK_ROW], (cur) => {
    const row = cur.get(TICK_ROW);
    const n = (k: string, d: number) => (typeof row?.[k] === 'number' ? row[k] : d);
    // A tick keeps the shard count and window it was first recorded with: shards own hash ranges of that count.
    record = {
      shards: n('shards', first.shards),
      windowStartMs: n('windowStartMs', first.windowStartMs),
      windowEndMs: n('windowEndMs', first.windowEndMs),
      // A tick recorded before assignments were recorded was enqueued with assignment 1.
      assignment: n('assignment', row === undefined ? first.assignment : 1),
    };
    return new Map([
      [
        TICK_ROW,
        {
          ...record,
          enqueuedAtMs: nowMs,
          enqueues: n('enqueues', 0) + 1,
          finalizedAtMs: n('finalizedAtMs', 0),
        },
      ],
    ]);
  });
  return record;
}

async function claimFinalize(store: BaselineStore, tickMs: number, nowMs: number): Promise<boolean> {
  let won = false;
  await store.updateRows('state', shardsPartition(tickMs), [TICK_ROW], (cur) => {
    const row = cur.get(TICK_ROW);
    won = row !== undefined && row.finalizedAtMs === 0;
    return won ? new Map([[TICK_ROW, { ...row, finalizedAtMs: nowMs }]]) : new Map<string, Entity | null>();
  });
  return won;
}

async function advanceShardCheckpoint(
  state: RunState,
  intervalMs: number,
  waiting: (tickMs: number, record: ShardTick | undefined) => Promise<void>,
): Promise<number[]> {
  const checkpointed: number[] = [];
  const checkpoint = await state.checkpoint();
  const pointer = await state.enqueued();
  if (pointer.lastTickMs === 0) return checkpointed;
  let contiguous = true;
  for (
    let t = checkpoint > 0 ? checkpoint + intervalMs : pointer.firstTickMs;
    t <= pointer.lastTickMs;
    t += intervalMs
  ) {
    const record = await state.shardProgress(t);
    if (shardTickComplete(record)) {
      if (contiguous) {
        await state.commitCheckpoint(t);
        checkpointed.push(t);
      }
      continue;
    }
    contiguous = false;
    await waiting(t, record);
  }
  return checkpointed;
}
