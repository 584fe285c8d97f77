import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import {
  type Alert,
  ALERT_COLUMNS,
  alertIdFor,
  buildAlert,
  type RareFinding,
} from '../../shared/alerts/alert.js';
import columnsFile from '../../shared/alerts/columns.json' with { type: 'json' };
import {
  decideAlerts,
  type EpisodePolicy,
  type LedgerEntry,
  ledgerKey,
} from '../../shared/alerts/episodes.js';
import { formatAlertTable, JsonlAlertSink, toRow } from '../../shared/alerts/sinks.js';
import type { CallerActivity, Observation } from '../../shared/scoring/model.js';
import type { RarityScore } from '../../shared/scoring/score.js';
import { CITIES, contosoHistory, hour } from '../support/model.js';

const HOUR = 3_600_000;
const defaults = {
  name: 'Unusual City for an Azure Activity Logs Event',
  severity: 'Low',
  riskScore: 21,
  detectorVersion: 'test',
};
const policy: EpisodePolicy = { cooldownMs: 24 * HOUR, rescoreMargin: 20, dailyCap: 50 };
const history = contosoHistory(30);

function finding(
  caller: string,
  op: string,
  hourMs: number,
  city = CITIES.lagos,
  ip = '41.58.99.10',
): RareFinding {
  const rarity: RarityScore = history.score(op, city, hourMs, caller);
  const activity: CallerActivity = {
    caller,
    callerType: 'user',
    ips: [ip],
    events: 2,
    firstMs: hourMs + 60_000,
    lastMs: hourMs + 120_000,
    resourceIds: ['/subscriptions/s/resourcegroups/rg/providers/x/y/z'],
    correlationIds: ['c1'],
    subscriptionId: 's',
    resourceGroup: 'rg',
  };
  const observation: Observation = {
    operationKey: op,
    operation: op.toUpperCase(),
    city,
    hourMs,
    events: 2,
    callers: [activity],
  };
  return { observation, activity, rarity };
}

const isoDate = (v: unknown) => typeof v === 'string' && !Number.isNaN(Date.parse(v)) && v.endsWith('Z');

describe('alert columns: one file for code, tests and infra', () => {
  it('an alert has exactly the columns of columns.json, in order, with values of the declared types', () => {
    const a = buildAlert(
      [finding('admin1@contoso.com', 'listkeys/action', hour(31, 3))],
      hour(31, 3) + 15 * 60_000,
      defaults,
    );
    const row = toRow(a);
    expect(Object.keys(row)).toEqual(columnsFile.columns.map((c) => c.name));
    expect(Object.keys(a).sort()).toEqual(columnsFile.columns.map((c) => c.name).sort());
    for (const c of ALERT_COLUMNS) {
      const v = row[c.name];
      const ok =
        c.type === 'string'
          ? typeof v === 'string'
          : c.type === 'int' || c.type === 'long'
            ? Number.isInteger(v)
            : c.type === 'real'
              ? typeof v === 'number' && Number.isFinite(v)
              : c.type === 'bool'
                ? typeof v === 'boolean'
                : c.type === 'datetime'
                  ? isoDate(v)
                  : typeof v === 'object' && v !== null;
      expect(ok, `${c.name}: ${c.type} = ${JSON.stringify(v)}`).toBe(true);
    }
  });

  it('the required columns are all there (names fixed, ASIM-aligned)', () => {
    const required =
      'TimeGenerated AlertId AlertName Severity RiskScore AnomalyScore Description Tactics Techniques Operation Operations Caller CallerType SrcIpAddr SrcIpAddrs SrcGeoCity SrcGeoRegion SrcGeoCountry SrcGeoLatitude SrcGeoLongitude SubscriptionId ResourceGroup ResourceIds CorrelationIds EventCount FirstEventTime LastEventTime BaselineCities Explanation DetectorVersion ParentAlertId SrcGeoCityId'.split(
        ' ',
      );
    expect(columnsFile.columns.map((c) => c.name)).toEqual(required);
    expect(columnsFile.table).toBe('UnusualCityAlerts_CL');
    expect(columnsFile.stream).toBe('Custom-UnusualCityAlerts_CL');
  });

  it("SrcGeoCityId is the city's geoname id (what an allow rule takes), empty for an egress range or a country", () => {
    const at = (city: RareFinding['observation']['city']) =>
      buildAlert([finding('ann@contoso.com', 'listkeys/action', hour(31, 3), city)], hour(31, 4), defaults)
        .SrcGeoCityId;
    expect(at(CITIES.lagos)).toBe('2332459');
    expect(at(CITIES.newYork)).toBe('5128581');
    // An egress range keeps the lookup's geoname id on the city, but its place is the range, not the city.
    expect(at({ ...CITIES.london, key: 'e:CorpVPN', egress: 'CorpVPN', geonameId: 2643743 })).toBe('');
    expect(at({ ...CITIES.lagos, key: 'c:NG', name: '', geonameId: undefined })).toBe('');
  });

  it('defaults follow the rule it replaces', () => {
    const a = buildAlert(
      [finding('admin1@contoso.com', 'listkeys/action', hour(31, 3))],
      hour(31, 4),
      defaults,
    );
    expect([a.AlertName, a.Severity, a.RiskScore, a.Tactics, a.Techniques]).toEqual([
      'Unusual City for an Azure Activity Logs Event',
      'Low',
      21,
      'InitialAccess',
      'T1078,T1078.004',
    ]);
    expect(a.Description).toContain('admin1@contoso.com');
    expect(a.Description).toContain('Lagos');
  });

  it('AlertId is deterministic and depends on caller, city, hour and operation', () => {
    const id = alertIdFor('a', 'g:1', 1, 'op');
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(alertIdFor('a', 'g:1', 1, 'op')).toBe(id);
    expect(
      new Set([
        alertIdFor('b', 'g:1', 1, 'op'),
        alertIdFor('a', 'g:2', 1, 'op'),
        alertIdFor('a', 'g:1', 2, 'op'),
        alertIdFor('a', 'g:1', 1, 'op2'),
      ]).size,
    ).toBe(4);
  });

  it('leads with the highest-scoring operation and lists all', () => {
    const fs = [
      finding('admin1@contoso.com', 'deployments/write', hour(31, 3)),
      finding('admin1@contoso.com', 'listkeys/action', hour(31, 3)),
    ];
    const a = buildAlert(fs, hour(31, 4), defaults);
    const best = [...fs].sort((x, y) => y.rarity.score - x.rarity.score)[0]!;
    expect(a.Operation).toBe(best.observation.operation);
    expect(a.Operations).toHaveLength(2);
    expect(a.EventCount).toBe(4);
    expect(a.Explanation.operations).toHaveLength(2);
  });
});

describe('alert episodes', () => {
  const lagos = (h: number, op = 'listkeys/action', caller = 'admin1@contoso.com') =>
    finding(caller, op, hour(31, 0) + h * HOUR);
  const run = (
    fs: RareFinding[],
    ledger = new Map<string, LedgerEntry>(),
    today: string[] = [],
    tickHour = 0,
  ) =>
    decideAlerts(
      fs,
      ledger,
      new Map([[new Date(hour(31, 0) + tickHour * HOUR).toISOString().slice(0, 10), new Set(today)]]),
      hour(31, 0) + tickHour * HOUR,
      policy,
      defaults,
    );
  const asLedger = (entries: LedgerEntry[]) =>
    new Map(entries.map((e) => [ledgerKey(e.caller, e.cityKey), e]));

  it('one alert per (caller, city) in a run, whatever the number of operations', () => {
    const d = run([lagos(1), lagos(1, 'deployments/write'), lagos(1, 'sites/write')]);
    expect(d.alerts).toHaveLength(1);
    expect(d.alerts[0]!.Operations).toHaveLength(3);
    expect(d.ledger).toHaveLength(1);
  });

  it('later rare operations within the cooldown join the episode silently; the episode ends after a quiet cooldown', () => {
    const first = run([lagos(1)]);
    const ledger = asLedger(first.ledger);
    const joined = run([lagos(10, 'deployments/write')], ledger, [], 10);
    expect(joined.alerts).toEqual([]);
    expect(joined.suppressedByCooldown).toBe(1);
    expect(joined.ledger[0]!.operations).toEqual(
      expect.arrayContaining(['LISTKEYS/ACTION', 'DEPLOYMENTS/WRITE']),
    );
    // Activity keeps the episode alive: 30 h after the alert, but 20 h after the last rare activity. An operation
    // already reported (listkeys) joins silently.
    const ledger2 = asLedger(joined.ledger);
    expect(run([lagos(30, 'listkeys/action')], ledger2, [], 30).alerts).toEqual([]);
    // After a full cooldown without rare activity, a new episode and a new alert.
    const fresh = run([lagos(40, 'sites/write')], ledger2, [], 40).alerts;
    expect(fresh).toHaveLength(1);
    expect(fresh[0]!.ParentAlertId).toBe('');
  });

  it('escalation inside an open episode: operations new to it raise one update alert per cooldown, linked to the first', () => {
    const first = run([lagos(1)]);
    const firstId = first.alerts[0]!.AlertId;
    let ledger = asLedger(first.ledger);
    // Within the cooldown of the first alert: joins silently (deployments/write is remembered, not reported).
    const early = run([lagos(10, 'deployments/write')], ledger, [], 10);
    expect(early.alerts).toEqual([]);
    ledger = asLedger(early.ledger);
    // A day after the first alert, still inside the episode (rare activity 10 h ago): an operation new to the episode
    // raises an update alert naming it, linked to the first alert; those already in the episode do not.
    const later = run(
      [lagos(26, 'roleassignments/write'), lagos(26, 'listkeys/action'), lagos(26, 'deployments/write')],
      ledger,
      [],
      26,
    );
    expect(later.alerts).toHaveLength(1);
    const update = later.alerts[0]!;
    expect(update.ParentAlertId).toBe(firstId);
    expect(update.AlertId).not.toBe(firstId);
    expect(update.Operations).toEqual(['ROLEASSIGNMENTS/WRITE']);
    // Re-running the same run (a crash before the sink) raises the same update alert again, never another.
    const rerun = run(
      [lagos(26, 'roleassignments/write'), lagos(26, 'listkeys/action')],
      asLedger(later.ledger),
      [],
      26,
    );
    expect(rerun.alerts.map((a) => a.AlertId)).toEqual([update.AlertId]);
    // Another new operation within a cooldown of the update: silent; after it, the next update.
    ledger = asLedger(later.ledger);
    expect(run([lagos(40, 'sites/write')], ledger, [], 40).alerts).toEqual([]);
    const silent = asLedger(run([lagos(40, 'sites/write')], ledger, [], 40).ledger);
    expect(run([lagos(51, 'sites/write')], silent, [], 51).alerts).toEqual([]);
    const next = run([lagos(51, 'vaults/accesspolicies/write')], silent, [], 51);
    expect(next.alerts.map((a) => [a.ParentAlertId, a.Operations])).toEqual([
      [firstId, ['VAULTS/ACCESSPOLICIES/WRITE']],
    ]);
  });

  it('a markedly higher score within the cooldown raises a new alert', () => {
    const low = { ...lagos(1), rarity: { ...lagos(1).rarity, score: 55 } };
    const ledger = asLedger(run([low]).ledger);
    const high = { ...lagos(2, 'roleassignments/write'), rarity: { ...lagos(2).rarity, score: 80 } };
    const slightly = { ...lagos(2, 'sites/write'), rarity: { ...lagos(2).rarity, score: 70 } };
    expect(run([slightly], ledger, [], 2).alerts).toEqual([]);
    expect(run([high], ledger, [], 2).alerts).toHaveLength(1);
  });

  it('re-running the same run gives the same alert (same id), never a second one', () => {
    const first = run([lagos(1)]);
    const again = run([lagos(1)], asLedger(first.ledger));
    expect(again.alerts.map((a) => a.AlertId)).toEqual(first.alerts.map((a) => a.AlertId));
  });

  it('the daily cap keeps the highest-scoring episodes', () => {
    const capped = decideAlerts(
      [
        lagos(1, 'listkeys/action', 'a@x'),
        lagos(1, 'listkeys/action', 'b@x'),
        finding('c@x', 'deployments/write', hour(31, 1), CITIES.newYork, '24.90.99.10'),
      ],
      new Map(),
      new Map([['2026-02-05', new Set(['x', 'y'])]]),
      hour(31, 1),
      { ...policy, dailyCap: 3 },
      defaults,
    );
    expect(capped.alerts).toHaveLength(1);
    expect(capped.suppressedByCap).toBe(2);
  });
});

describe('JSON Lines sink', () => {
  const dirs: string[] = [];
  afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
  const alert = (h: number): Alert =>
    buildAlert([finding(`u${h}@x`, 'listkeys/action', hour(31, h))], hour(31, h + 1), defaults);

  it('appends each alert once, repairs a torn last line, and refuses foreign files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'uc-sink-'));
    dirs.push(dir);
    const path = join(dir, 'alerts.jsonl');
    const sink = await JsonlAlertSink.open(path);
    await sink.write([alert(1), alert(2)]);
    await sink.write([alert(2), alert(3)]);
    expect(sink.written).toBe(3);
    const full = await readFile(path, 'utf8');
    expect(full.trim().split('\n')).toHaveLength(3);
    await writeFile(path, full + JSON.stringify(toRow(alert(4))).slice(0, 50));
    const reopened = await JsonlAlertSink.open(path);
    expect(reopened.repairedBytes).toBe(50);
    expect(reopened.size).toBe(3);
    await reopened.write([alert(1), alert(4)]);
    const lines = (await readFile(path, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Alert);
    expect(lines.map((a) => a.AlertId)).toEqual(
      [alert(1), alert(2), alert(3), alert(4)].map((a) => a.AlertId),
    );
    await writeFile(join(dir, 'other.jsonl'), 'hello\n');
    await expect(JsonlAlertSink.open(join(dir, 'other.jsonl'))).rejects.toThrow(/not an alert JSON line/);
  });

  it('prints a readable table with explanations', () => {
    const text = formatAlertTable([alert(1)]);
    expect(text).toContain('u1@x');
    expect(text).toContain('Lagos, NG');
    expect(text).toContain('never seen');
    expect(formatAlertTable([])).toBe('No alerts.\n');
  });
});

describe('alert episodes after a TruePositive verdict', () => {
  const at = (h: number, op = 'listkeys/action') => finding('admin1@contoso.com', op, hour(31, 0) + h * HOUR);
  const decide = (fs: RareFinding[], ledger: Map<string, LedgerEntry>, tickHour: number) =>
    decideAlerts(fs, ledger, new Map(), hour(31, 0) + tickHour * HOUR, policy, defaults);
  const asLedger = (entries: LedgerEntry[]) =>
    new Map(entries.map((e) => [ledgerKey(e.caller, e.cityKey), e]));

  it('later activity from the city alerts again, once per new hour, linked to the confirmed alert', () => {
    const first = decide([at(1)], new Map(), 1);
    const id = first.alerts[0]!.AlertId;
    // Without a verdict the same operation two hours later joins the open episode silently.
    expect(decide([at(3)], asLedger(first.ledger), 3).alerts).toEqual([]);
    const confirmed = asLedger(first.ledger.map((l) => ({ ...l, confirmedAlertId: id })));
    const again = decide([at(3)], confirmed, 3);
    expect(again.alerts).toHaveLength(1);
    expect(again.alerts[0]!.ParentAlertId).toBe(id);
    // The same hour seen again (an overlapping run): the same alert, idempotent; a later hour: a new one.
    const after = asLedger(again.ledger);
    expect(decide([at(3)], after, 3).alerts.map((a) => a.AlertId)).toEqual([again.alerts[0]!.AlertId]);
    const next = decide([at(4)], after, 4);
    expect(next.alerts).toHaveLength(1);
    expect(next.alerts[0]!.AlertId).not.toBe(again.alerts[0]!.AlertId);
    expect(next.ledger[0]!.confirmedAlertId).toBe(id);
  });
});
