/**
 * The analysts' verdicts end to end: the real timer handler reads Sentinel's classification of its incidents from
 * the local Log Analytics (SecurityIncident joined to SecurityAlert, evaluated by the fake over its rows), and the
 * next run honours it — no alert for the (caller, city) an analyst closed as benign, an alert for later activity
 * from the city of a true positive — with the audit row naming the incident and the analyst. Azurite, the local
 * Log Analytics and Logs Ingestion services, the production credential chain; nothing leaves 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { makeDetectHandler } from '../../functions/detectUnusualCity.js';
import { toActivityRow } from '../../shared/activity/formats.js';
import type { TableStorageStore } from '../../shared/baseline/tableStorage.js';
import { loadSettings } from '../../shared/config/settings.js';
import { readAllowTable } from '../../shared/ops/allowlist.js';
import { readAudit } from '../../shared/ops/audit.js';
import { readCallerCities } from '../../shared/pipeline/callers.js';
import { CONFIRMED_UNTIL_MS } from '../../shared/pipeline/verdicts.js';
import { type Harness, startHarness } from '../support/e2eHarness.js';
import { ev, IP } from '../support/events.js';
import { sentinelVerdictRows } from '../support/fakeLogAnalytics.js';
import { invocationContext, timer } from '../support/invocation.js';
import { DEPLOY, LISTKEYS, londonTeam, replayInto } from '../support/londonTeam.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 9, 5); // a Monday
const FIRST = T0 + 10 * DAY + 3 * HOUR + 10 * MIN;
const LATER = FIRST + 2 * HOUR;
const RULE = '6f1c2a7e-3b9d-4c1e-8a2f-5d7e9b0c1a23';
const NEW_YORK = 'g:5128581';
const LAGOS = 'g:2332459';

describe('verdicts end to end: the timer reads a verdict from Log Analytics, the next run honours it', () => {
  let harness: Harness;
  let store: TableStorageStore;
  let handler: ReturnType<typeof makeDetectHandler>;
  const now = { ms: FIRST + 5 * MIN + 12_000 };
  const logLines: string[] = [];
  const events = londonTeam(10);
  const invoke = () =>
    handler(timer(false), invocationContext('detectUnusualCity', `inv-${now.ms}`, logLines));

  beforeAll(async () => {
    harness = await startHarness({ rows: events.map(toActivityRow) });
    // One-hour episodes: without the verdicts, dev1's new operation two hours later would raise an update alert.
    const env = harness.env({ UC_VERDICT_RULE_ID: RULE, UC_ALERT_COOLDOWN: '1h' });
    store = await harness.tableStore(loadSettings(env).UC_TABLE_PREFIX);
    const hourly = loadSettings({ UC_TICK_INTERVAL: '1h', UC_LOOKBACK: '2h', UC_ALERT_COOLDOWN: '1h' });
    await replayInto(store, events, { settings: hourly, toMs: T0 + 10 * DAY });
    // A traveller (dev1 in New York) and a stolen credential (admin in Lagos).
    harness.logs.rows.push(
      toActivityRow(ev(FIRST, DEPLOY, 'dev1@contoso.com', IP.newYork)),
      toActivityRow(ev(FIRST + 2 * MIN, LISTKEYS, 'admin@contoso.com', IP.lagos)),
    );
    handler = makeDetectHandler({ env, tlsCa: harness.ca, clock: () => now.ms });
  }, 120_000);

  afterAll(async () => {
    await harness.stop();
  });

  it('first run: two alerts, no verdict yet', async () => {
    const report = await invoke();
    expect(report.alerts).toBe(2);
    expect(harness.ingestion.received.map((r) => r.Caller).sort()).toEqual([
      'admin@contoso.com',
      'dev1@contoso.com',
    ]);
  });

  it('the analyst closes them in Sentinel; the next run applies the verdicts and honours them', async () => {
    const byCaller = new Map(harness.ingestion.received.map((r) => [r.Caller, String(r.AlertId)]));
    const closedMs = now.ms + 10 * MIN;
    for (const rows of [
      sentinelVerdictRows({
        ruleId: RULE,
        incidentNumber: 101,
        classification: 'BenignPositive',
        reason: 'SuspiciousButExpected',
        comment: 'dev1 is at the New York office this week',
        owner: 'ana@contoso.com',
        closedMs,
        alertId: byCaller.get('dev1@contoso.com')!,
      }),
      sentinelVerdictRows({
        ruleId: RULE,
        incidentNumber: 102,
        classification: 'TruePositive',
        reason: 'SuspiciousActivity',
        owner: 'ana@contoso.com',
        closedMs,
        alertId: byCaller.get('admin@contoso.com')!,
      }),
    ]) {
      harness.logs.incidents.push(rows.incident);
      harness.logs.securityAlerts.push(rows.alert);
    }
    // Two hours later both are back: dev1 turns to listing keys in New York (new to the episode), the attacker
    // lists keys in Lagos again (the episode's own operation).
    harness.logs.rows.push(
      toActivityRow(ev(LATER, LISTKEYS, 'dev1@contoso.com', IP.newYork)),
      toActivityRow(ev(LATER + 5 * MIN, LISTKEYS, 'admin@contoso.com', IP.lagos)),
    );
    now.ms = LATER + 25 * MIN;
    const before = harness.ingestion.received.length;
    const report = await invoke();
    const sent = harness.ingestion.received.slice(before);
    // Benign: no alert for dev1 in New York (allowlisted); true positive: admin in Lagos alerts again.
    expect(sent.map((r) => r.Caller)).toEqual(['admin@contoso.com']);
    expect(sent[0]!.SrcGeoCity).toBe('Lagos');
    expect(sent[0]!.ParentAlertId).toBe(byCaller.get('admin@contoso.com'));
    expect(report.allowlisted).toBeGreaterThanOrEqual(1);
    // The verdict query went to Log Analytics with the rule id, and was answered.
    const verdictQuery = harness.logs.requests.find((r) => r.query.startsWith('let ruleId'));
    expect(verdictQuery?.status).toBe(200);
    expect(verdictQuery?.query).toContain(`let ruleId = "${RULE}";`);
    // The allow rule and its audit row name the incident and the analyst.
    const rules = await readAllowTable(store);
    expect(rules).toEqual([
      expect.objectContaining({
        kind: 'caller+city',
        value: `dev1@contoso.com ${NEW_YORK}`,
        by: 'ana@contoso.com',
        expiresMs: closedMs + 90 * DAY,
      }),
      // UC_VERDICT_ALLOW_CITY_NETWORK (default true): the alert's city through its network, for colleagues.
      expect.objectContaining({
        kind: 'city+network',
        value: `${NEW_YORK} AS12271`,
        by: 'ana@contoso.com',
        expiresMs: closedMs + 90 * DAY,
      }),
    ]);
    const audit = (await readAudit(store)).filter((a) => a.action === 'allow');
    expect(audit).toHaveLength(2);
    for (const a of audit) {
      expect(a.by).toBe('ana@contoso.com');
      expect(a.reason).toBe(
        'incident 101: BenignPositive/SuspiciousButExpected: dev1 is at the New York office this week',
      );
    }
    expect(audit.map((a) => a.subject)).toEqual([
      `caller+city dev1@contoso.com ${NEW_YORK}`,
      `city+network ${NEW_YORK} AS12271`,
    ]);
    // The true positive's quarantine no longer ages out.
    expect((await readCallerCities(store, 'admin@contoso.com')).get(LAGOS)?.quarantinedUntilMs).toBe(
      CONFIRMED_UNTIL_MS,
    );
  });

  it('a verdict is applied once; a third run with nothing new raises nothing and adds no audit row', async () => {
    now.ms += 15 * MIN;
    const before = harness.ingestion.received.length;
    await invoke();
    expect(harness.ingestion.received.length).toBe(before);
    expect((await readAudit(store)).filter((a) => a.action === 'allow')).toHaveLength(2);
  });

  it('a failing verdict query is a warning: detection goes on', async () => {
    harness.logs.failNext(403);
    now.ms += 15 * MIN;
    const report = await invoke();
    expect(report.ticks).toHaveLength(1);
    expect(logLines.join('\n')).toMatch(/Verdicts could not be read or applied \(detection goes on/);
  });
});
