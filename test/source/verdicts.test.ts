import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  buildVerdictQuery,
  loadVerdictQuery,
  VERDICT_COLUMNS,
  VerdictSource,
} from '../../shared/source/verdicts.js';
import { sentinelVerdictRows } from '../support/fakeLogAnalytics.js';
import {
  analyseKql,
  formatDiagnostics,
  securityAlertTable,
  securityIncidentTable,
} from '../support/kusto.js';
import { type LogAnalyticsClientSetup, startLogAnalyticsClient } from '../support/logsQueryClient.js';

const WORKSPACE_ID = '0b0e2f5c-5c1e-4a57-9d4e-2f5b4c9e1a11';

const RULE = '6f1c2a7e-3b9d-4c1e-8a2f-5d7e9b0c1a23';
const SINCE = Date.UTC(2026, 10, 1);
const sentinel = { tables: [securityIncidentTable(), securityAlertTable()] };

describe('shared/source/verdicts.kql, bound by Kusto.Language against SecurityIncident and SecurityAlert', () => {
  let template: string;
  beforeAll(async () => {
    template = await loadVerdictQuery();
  });

  it('has no syntax or semantic diagnostics', () => {
    const text = buildVerdictQuery(template, { ruleId: RULE, sinceMs: SINCE });
    expect(formatDiagnostics(analyseKql(text, sentinel).diagnostics)).toEqual([]);
  });

  it('returns the columns, with the types, that the reader expects', () => {
    const a = analyseKql(buildVerdictQuery(template, { ruleId: RULE, sinceMs: SINCE }), sentinel);
    expect(a.resultColumns).toEqual(Object.entries(VERDICT_COLUMNS));
  });

  it('negative controls: a misspelt column, a missing table and a broken join are reported', () => {
    const ok = buildVerdictQuery(template, { ruleId: RULE, sinceMs: SINCE });
    const typo = ok.replace('ClassificationReason,', 'ClassificationReasons,');
    expect(typo).not.toBe(ok);
    expect(formatDiagnostics(analyseKql(typo, sentinel).diagnostics).join('\n')).toContain(
      'ClassificationReasons',
    );
    const noAlerts = { tables: [securityIncidentTable()] };
    expect(formatDiagnostics(analyseKql(ok, noAlerts).diagnostics).join('\n')).toContain('SecurityAlert');
    const badJoin = ok.replace(') on SystemAlertId', ') on AlertIdx');
    expect(badJoin).not.toBe(ok);
    expect(analyseKql(badJoin, sentinel).diagnostics).not.toEqual([]);
  });

  it('binds only a GUID rule id and a datetime from a number: nothing else reaches the query', () => {
    const text = buildVerdictQuery(template, { ruleId: RULE.toUpperCase(), sinceMs: SINCE });
    expect(
      text.startsWith(`let ruleId = "${RULE}";\nlet since = datetime(2026-11-01T00:00:00.000Z);\n`),
    ).toBe(true);
    for (const bad of ['', `${RULE}"; SecurityAlert | take 1; let x = "`, 'not-a-guid', `${RULE} `])
      expect(() => buildVerdictQuery(template, { ruleId: bad, sinceMs: SINCE })).toThrow(/GUID/);
    for (const bad of [-1, 1.5, Number.NaN, Date.UTC(10000, 0, 1)])
      expect(() => buildVerdictQuery(template, { ruleId: RULE, sinceMs: bad })).toThrow(/sinceMs/);
  });
});

describe('VerdictSource: the real LogsQueryClient against the local Log Analytics', () => {
  let setup: LogAnalyticsClientSetup;
  const now = Date.now();
  const HOUR = 3_600_000;
  const alertA = 'aaaaaaaa-1111-4222-8333-444444444444';
  const alertB = 'bbbbbbbb-1111-4222-8333-444444444444';
  beforeAll(async () => {
    setup = await startLogAnalyticsClient([]);
    const add = (rows: { incident: Record<string, unknown>; alert: Record<string, unknown> }) => {
      setup.fake.incidents.push(rows.incident);
      setup.fake.securityAlerts.push(rows.alert);
    };
    // Incident 7: first closed as TruePositive, then reclassified BenignPositive (the latest state wins).
    add(
      sentinelVerdictRows({
        ruleId: RULE,
        incidentNumber: 7,
        classification: 'TruePositive',
        closedMs: now - 5 * HOUR,
        alertId: alertA,
      }),
    );
    add(
      sentinelVerdictRows({
        ruleId: RULE,
        incidentNumber: 7,
        classification: 'BenignPositive',
        reason: 'SuspiciousButExpected',
        comment: 'travel to Lisbon',
        owner: 'ana@contoso.com',
        closedMs: now - 2 * HOUR,
        alertId: alertA,
      }),
    );
    // Incident 8: another rule's: never read.
    add(
      sentinelVerdictRows({
        ruleId: '11111111-2222-4333-8444-555555555555',
        incidentNumber: 8,
        classification: 'FalsePositive',
        closedMs: now - HOUR,
        alertId: alertB,
      }),
    );
    // Incident 9: an alert whose custom details carry no GUID: skipped with its position.
    const bad = sentinelVerdictRows({
      ruleId: RULE,
      incidentNumber: 9,
      classification: 'FalsePositive',
      closedMs: now - HOUR,
      alertId: alertB,
    });
    bad.alert.ExtendedProperties = JSON.stringify({
      'Custom Details': JSON.stringify({ AlertId: ['not-a-guid'] }),
    });
    add(bad);
    // Incident 10: still open: not a verdict.
    const open = sentinelVerdictRows({
      ruleId: RULE,
      incidentNumber: 10,
      classification: '',
      closedMs: now - HOUR,
      alertId: alertB,
    });
    open.incident.Status = 'Active';
    add(open);
    // Incident 11: closed long before the lookback.
    add(
      sentinelVerdictRows({
        ruleId: RULE,
        incidentNumber: 11,
        classification: 'FalsePositive',
        closedMs: now - 40 * 24 * HOUR,
        alertId: alertB,
      }),
    );
  });
  afterAll(async () => {
    await setup.close();
  });

  const source = (warnings: string[] = []) =>
    new VerdictSource({
      client: setup.client,
      workspaceId: WORKSPACE_ID,
      ruleId: RULE,
      lookbackMs: 30 * 24 * HOUR,
      log: (_, m) => warnings.push(m),
    });

  it('reads the latest state of the closed incidents of the rule, validates each row, skips bad ones', async () => {
    const r = await source().read(now);
    expect(r.partial).toBe(false);
    expect(r.verdicts).toEqual([
      {
        incidentNumber: 7,
        incidentName: expect.stringMatching(/^00000007-/) as string,
        classification: 'BenignPositive',
        reason: 'SuspiciousButExpected',
        comment: 'travel to Lisbon',
        owner: 'ana@contoso.com',
        modifiedBy: '',
        closedTimeMs: now - 2 * HOUR,
        alertId: alertA,
      },
    ]);
    expect(r.skipped).toEqual([{ position: 1, reason: 'AlertId "not-a-guid" is not GUID-shaped' }]);
    const sent = setup.fake.requests.at(-1)!;
    expect(sent.status).toBe(200);
    expect(sent.query.startsWith(`let ruleId = "${RULE}";`)).toBe(true);
  });

  it('a partial answer is a warning: what came is kept', async () => {
    setup.fake.failNext('partial');
    const warnings: string[] = [];
    const r = await source(warnings).read(now);
    expect(r.partial).toBe(true);
    expect(r.verdicts.length + r.skipped.length).toBe(1);
    expect(warnings.join('\n')).toMatch(/answered in part/);
  });

  it('a refused query throws (the timer turns it into a warning)', async () => {
    setup.fake.failNext(403);
    await expect(source().read(now)).rejects.toThrow();
  });
});
