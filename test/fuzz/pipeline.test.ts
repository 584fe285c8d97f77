/**
 * Hostile records through the whole pipeline: normalised like any input, then replayed with the production
 * pipeline among a warm history and a labelled attack; hostile operation names and callers stored in Table Storage
 * (Azurite) and read back; hostile cells in a Log Analytics result. Nothing throws, the attack is still alerted,
 * every event is accounted for, and what reaches people (the console table, alert descriptions) is safe to show.
 */
import type { LogsTable } from '@azure/monitor-query-logs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { toActivityRow } from '../../shared/activity/formats.js';
import { normaliseActivityRow } from '../../shared/activity/normalise.js';
import type { ActivityEvent } from '../../shared/activity/types.js';
import { alertDefaults } from '../../shared/alerts/defaults.js';
import { formatAlertTable, MemoryAlertSink } from '../../shared/alerts/sinks.js';
import { TableStorageStore } from '../../shared/baseline/tableStorage.js';
import { loadSettings } from '../../shared/config/settings.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import type { Geolocator } from '../../shared/geo/types.js';
import { runTick } from '../../shared/pipeline/tick.js';
import { RESULT_COLUMNS, rowsToGroups } from '../../shared/source/logAnalytics.js';
import { type AzuriteTables, startAzurite } from '../support/azurite.js';
import { ev, IP, replayEvents } from '../support/events.js';
import { DEPLOY, LISTKEYS, londonTeam } from '../support/londonTeam.js';
import { hasLoneSurrogate, HOSTILE_STRINGS, hostileString, hostileValue, isDisplaySafe } from './hostile.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 9, 5);

/** Ten days of a London team, then the admin's keys listed from Lagos (one alert). */
const history = () => londonTeam(10);
const ATTACK = ev(T0 + 10 * DAY + 3 * HOUR, LISTKEYS, 'admin@contoso.com', IP.lagos);

/** Hostile records (as AzureActivity rows) during the attack day, normalised like any input. */
const hostileRecord = fc
  .record({
    op: hostileString({ huge: true }),
    caller: hostileString({ huge: true }),
    ip: fc.oneof(
      hostileString(),
      fc.constantFrom(
        '010.1.1.1',
        'fe80::1%eth0',
        '::ffff:31.221.99.10',
        '10.0.0.1',
        IP.amsterdam,
        IP.newYork,
        '',
      ),
    ),
    minute: fc.integer({ min: 0, max: 24 * 60 - 1 }),
    claims: hostileValue(),
  })
  .map(({ op, caller, ip, minute, claims }) => ({
    ...toActivityRow(ev(T0 + 10 * DAY + minute * 60_000, 'X', 'x', '1.1.1.1')),
    OperationNameValue: op,
    Caller: caller,
    CallerIpAddress: ip,
    Claims_d: claims,
  }));

describe('hostile records through the production pipeline', () => {
  it('never throws; the attack is alerted; every event accounted for; alert text safe to show', async () => {
    const base = history();
    await fc.assert(
      fc.asyncProperty(fc.array(hostileRecord, { minLength: 1, maxLength: 25 }), async (rows) => {
        const accepted: ActivityEvent[] = [];
        let rejected = 0;
        for (const r of rows) {
          const n = normaliseActivityRow(r);
          if (n.ok) accepted.push(n.event);
          else rejected++;
        }
        expect(accepted.length + rejected).toBe(rows.length);
        const { sink, summary, store } = await replayEvents([...base, ATTACK, ...accepted]);
        await store.close();
        expect(sink.alerts.some((a) => a.Caller === 'admin@contoso.com' && a.SrcGeoCity === 'Lagos')).toBe(
          true,
        );
        expect(summary.events).toBe(base.length + 1 + accepted.length);
        expect(
          summary.locatedEvents +
            summary.internalEvents +
            summary.noCityEvents +
            summary.notFoundEvents +
            summary.invalidIpEvents,
        ).toBe(summary.events);
        for (const a of sink.alerts) {
          expect(isDisplaySafe(a.Description)).toBe(true);
          expect(isDisplaySafe(a.Explanation.summary)).toBe(true);
          for (const o of a.Explanation.operations) expect(isDisplaySafe(o.sentence)).toBe(true);
        }
        const table = formatAlertTable(sink.alerts);
        expect(isDisplaySafe(table.replace(/\n/g, ''))).toBe(true);
        expect(table.split('\n')).toHaveLength(2 + 2 * sink.alerts.length + 1);
      }),
      { numRuns: 12 },
    );
  }, 120_000);
});

describe('timestamps far apart', () => {
  it('a stray record decades after the rest: the replay skips the empty runs instead of simulating them', async () => {
    const base = [...history(), ATTACK];
    const stray = ev(Date.UTC(2099, 11, 31, 23), DEPLOY, 'dev1@contoso.com', IP.london);
    const t = performance.now();
    const { sink, summary, store } = await replayEvents([...base, stray]);
    await store.close();
    // Before: one checkpoint write per empty run, 2.5 million of them (minutes). Now the gap costs nothing.
    expect(performance.now() - t).toBeLessThan(15_000);
    const tick = 15 * 60_000;
    const first = Math.floor(summary.firstEventMs / tick) * tick + tick;
    expect(summary.ticks).toBe((Math.floor(stray.timeMs / tick) * tick + tick - first) / tick + 1);
    const { sink: alone } = await replayEvents(base);
    expect(sink.alerts.map((a) => a.AlertId)).toEqual(alone.alerts.map((a) => a.AlertId));
  }, 60_000);
});

describe('hostile names in Table Storage (Azurite)', () => {
  let azurite: AzuriteTables;
  let store: TableStorageStore;
  let geo: Geolocator;
  beforeAll(async () => {
    azurite = await startAzurite();
    store = await TableStorageStore.open({
      endpoint: azurite.endpoint,
      credential: azurite.credential,
      tablePrefix: 'fuzz',
      allowInsecureConnection: true,
    });
    geo = await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' });
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await azurite?.stop();
  });

  it('any operation name and caller a record can carry is stored and read back', async () => {
    const settings = loadSettings({});
    let hour = T0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...HOSTILE_STRINGS),
        hostileString(),
        hostileString(),
        async (a, b, c) => {
          const n = normaliseActivityRow({
            ...toActivityRow(ev((hour += HOUR), 'X', 'x', IP.lagos)),
            OperationNameValue: `OP/${a}${b}`,
            Caller: `c${c}${a}`,
          });
          if (!n.ok) return; // too long: rejected before the store (counted by the reader)
          const e = n.event;
          const group = {
            operation: e.operation,
            operationKey: e.operationKey,
            caller: e.caller,
            callerType: e.callerType,
            callerIp: e.callerIp,
            hourMs: Math.floor(e.timeMs / HOUR) * HOUR,
            count: 1,
            firstMs: e.timeMs,
            lastMs: e.timeMs,
            resourceIds: [],
            correlationIds: [],
            subscriptionId: '',
            resourceGroup: '',
          };
          await runTick(
            { store, geo, settings, sink: new MemoryAlertSink(), defaults: alertDefaults(settings) },
            group.hourMs + HOUR,
            [group],
          );
          const rows = await store.readPartition('baselines', e.operationKey);
          expect(rows.get('~op')?.operation).toBe(e.operation);
          expect([...rows.keys()]).toContain('g:2332459'); // Lagos
          // The caller's history with Lagos is stored, whatever the layout (a partition per caller, or buckets).
          let found = false;
          for (const partition of await store.listPartitions('tenant')) {
            const keys = [...(await store.readPartition('tenant', partition)).keys()];
            const mine = (k: string) =>
              partition === `caller:${e.caller}` || k.startsWith(`${e.caller}\u0000`);
            if (keys.some((k) => k.endsWith('g:2332459') && mine(k))) found = true;
          }
          expect(found).toBe(true);
        },
      ),
      { numRuns: 30 },
    );
  }, 120_000);
});

describe('hostile cells in a Log Analytics result', () => {
  const columns = Object.entries(RESULT_COLUMNS).map(([name, type]) => ({ name, type }));
  const index = new Map(columns.map((c, i) => [c.name, i]));

  it('rows with any text are mapped to well-formed groups; oversized ones are skipped and reported', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            op: hostileString({ huge: true }),
            caller: hostileString({ huge: true }),
            ip: hostileString({ huge: true }),
            ids: hostileValue(),
          }),
          { maxLength: 10 },
        ),
        (cells) => {
          const rows = cells.map((c) => {
            const row: unknown[] = columns.map(() => '');
            const set = (k: string, v: unknown) => (row[index.get(k)!] = v);
            set('Hour', new Date(T0));
            set('FirstTime', new Date(T0));
            set('LastTime', new Date(T0));
            set('EventCount', 3);
            set('ManagedIdentityEvents', 0);
            set('OperationKey', c.op.toLowerCase());
            set('Operation', c.op);
            set('Caller', c.caller);
            set('CallerIpAddress', c.ip);
            set('ResourceIds', c.ids);
            set('CorrelationIds', JSON.stringify(c.ids));
            return row;
          });
          const skipped: string[] = [];
          const groups = rowsToGroups(
            { name: 'PrimaryResult', columnDescriptors: columns, rows } as LogsTable,
            (w) => skipped.push(w),
          );
          for (const g of groups) {
            for (const v of [
              g.operation,
              g.operationKey,
              g.caller,
              g.callerIp,
              ...g.resourceIds,
              ...g.correlationIds,
            ])
              expect(hasLoneSurrogate(v)).toBe(false);
            expect(g.operationKey.length).toBeLessThanOrEqual(512);
            expect(g.caller.length).toBeLessThanOrEqual(256);
          }
          expect(groups.length + skipped.length).toBeLessThanOrEqual(rows.length);
          for (const w of skipped) expect(w).toMatch(/^(operation|caller|callerIp) of \d+ characters/);
        },
      ),
      { numRuns: 60 },
    );
  });
});
