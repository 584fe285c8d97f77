/**
 * Issue 14, point 8: an alert delivered late still becomes exactly one Sentinel incident.
 *
 * The real timer handler raises an alert while the local Logs Ingestion service is down; the outbox delivers it
 * three hours later (the row keeps its detection slot as TimeGenerated), and a lost acknowledgement makes it
 * arrive twice. The rows the service received, each with the simulated time it received them as its ingestion
 * time, are then read by the Sentinel rule's own KQL (infra/sentinel/rule.kql, evaluated by
 * test/support/kqlEval.ts) at every scheduled run of the rule (its queryFrequency, plus Sentinel's five-minute
 * delay), and the alerts each run raises are grouped into incidents as the rule's incidentConfiguration says.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { makeDetectHandler } from '../../functions/detectUnusualCity.js';
import { toActivityRow } from '../../shared/activity/formats.js';
import columnsFile from '../../shared/alerts/columns.json' with { type: 'json' };
import { loadSettings } from '../../shared/config/settings.js';
import { type Harness, startHarness } from '../support/e2eHarness.js';
import { ev, IP } from '../support/events.js';
import { invocationContext, timer } from '../support/invocation.js';
import { evaluateKql, type IngestedRow, type KqlRow } from '../support/kqlEval.js';
import { alertsTable, analyseKql } from '../support/kusto.js';
import { LISTKEYS, londonTeam, replayInto } from '../support/londonTeam.js';
import { INFRA, parseBicep, propertyAt, stringLiteral } from './bicep.js';
import { declarations } from './bicep.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 9, 5);
const ATTACK = T0 + 10 * DAY + 3 * HOUR + 10 * MIN;
/** Ingestion latency: a row becomes queryable this long after the service accepted it. */
const INGESTION_LATENCY = 2 * MIN;
/** Sentinel starts a scheduled rule's run about five minutes after its scheduled time (round2-facts.md §4). */
const SENTINEL_DELAY = 5 * MIN;

const ruleQuery = readFileSync(join(INFRA, 'sentinel/rule.kql'), 'utf8');
const TABLE = columnsFile.table;

/** The selection of the rule before this change: by TimeGenerated over the last hour. */
const TIME_GENERATED_RULE = `let lookback = 1h;
let frequency = 15m;
let lateStart = 2m;
${TABLE}
| where TimeGenerated > ago(lookback)
| extend Ingested = ingestion_time()
| summarize FirstIngested = min(Ingested), arg_max(TimeGenerated, *) by AlertId
| where FirstIngested > ago(frequency + lateStart)`;

interface RuleSchedule {
  frequencyMs: number;
  groupingLookbackMs: number;
  groupBy: string[];
}

async function ruleSchedule(): Promise<RuleSchedule> {
  const sentinel = declarations(await parseBicep(join(INFRA, 'modules/sentinel.bicep')));
  const rule = sentinel.resources.find((r) => r.type === 'Microsoft.SecurityInsights/alertRules')!;
  const iso = (path: string) => stringLiteral(propertyAt(rule.body, path))!;
  const minutes = /^PT(\d+)M$/.exec(iso('properties.queryFrequency'));
  const days = /^P(\d+)D$/.exec(
    iso('properties.incidentConfiguration.groupingConfiguration.lookbackDuration'),
  );
  if (!minutes || !days) throw new Error('unexpected rule durations');
  const groupBy = propertyAt(
    rule.body,
    'properties.incidentConfiguration.groupingConfiguration.groupByEntities',
  );
  return {
    frequencyMs: Number(minutes[1]) * MIN,
    groupingLookbackMs: Number(days[1]) * DAY,
    groupBy: (groupBy?.namedChildren ?? []).map((n) => stringLiteral(n)!),
  };
}

interface RaisedAlert {
  runMs: number;
  row: KqlRow;
}

/** Runs `query` at each scheduled time over the ingested rows: the alerts each run raises (AlertPerResult). */
function runRule(query: string, ingested: readonly IngestedRow[], runs: readonly number[]): RaisedAlert[] {
  return runs.flatMap((runMs) =>
    evaluateKql(query, {
      schemas: [alertsTable()],
      // Only what had been ingested (and become queryable) when the run started.
      data: { [TABLE]: ingested.filter((r) => r.ingestedMs <= runMs) },
      nowMs: runMs,
    }).map((row) => ({ runMs, row })),
  );
}

/**
 * Sentinel's alert grouping with matchingMethod 'Selected' on the Account entity: an alert joins the incident of
 * the same account created within the lookback, else opens a new one.
 */
function incidents(alerts: readonly RaisedAlert[], schedule: RuleSchedule): RaisedAlert[][] {
  expect(schedule.groupBy).toEqual(['Account']);
  const account = (a: RaisedAlert) => JSON.stringify([a.row.AccountUpn, a.row.AccountObjectId]);
  const open: { account: string; createdMs: number; alerts: RaisedAlert[] }[] = [];
  for (const alert of [...alerts].sort((a, b) => a.runMs - b.runMs)) {
    const match = open.find(
      (i) => i.account === account(alert) && alert.runMs - i.createdMs <= schedule.groupingLookbackMs,
    );
    if (match) match.alerts.push(alert);
    else open.push({ account: account(alert), createdMs: alert.runMs, alerts: [alert] });
  }
  return open.map((i) => i.alerts);
}

describe('the Sentinel rule over what the ingestion service received: an alert three hours late raises one incident', () => {
  let harness: Harness;
  let schedule: RuleSchedule;
  const ingested: IngestedRow[] = [];
  const now = { ms: ATTACK + 5 * MIN + 12_000 };
  let slot = 0;
  let deliveredAt = 0;

  beforeAll(async () => {
    schedule = await ruleSchedule();
    const events = londonTeam(10);
    harness = await startHarness({ rows: events.map(toActivityRow) });
    const env = harness.env();
    const store = await harness.tableStore(loadSettings(env).UC_TABLE_PREFIX);
    await replayInto(store, events, {
      settings: loadSettings({ UC_TICK_INTERVAL: '1h', UC_LOOKBACK: '2h' }),
      toMs: T0 + 10 * DAY,
    });
    harness.logs.rows.push(toActivityRow(ev(ATTACK, LISTKEYS, 'admin@contoso.com', IP.lagos)));
    const handler = makeDetectHandler({ env, tlsCa: harness.ca, clock: () => now.ms });
    const logLines: string[] = [];
    /** One timer run at now.ms; what the service accepted during it is ingested at now.ms + latency. */
    const run = async () => {
      const before = harness.ingestion.received.length;
      const report = await handler(
        timer(),
        invocationContext('detectUnusualCity', `inv-${now.ms}`, logLines),
      );
      for (const row of harness.ingestion.received.slice(before)) {
        ingested.push({ row, ingestedMs: now.ms + INGESTION_LATENCY });
      }
      return report;
    };

    // The attack's run raises the alert while ingestion is down: it waits in the outbox.
    harness.ingestion.setDown(true);
    const first = await run();
    expect(first.alerts).toBe(1);
    expect(first.pendingOutbox).toBe(1);
    slot = first.ticks.at(-1)!;
    // Three hours of runs with ingestion still down.
    while (now.ms < slot + 3 * HOUR) {
      now.ms += 15 * MIN;
      expect((await run()).pendingOutbox).toBe(1);
    }
    // Ingestion is back: the next run delivers the alert, three hours after its slot.
    harness.ingestion.setDown(false);
    now.ms += 15 * MIN;
    expect((await run()).delivered).toBe(1);
    deliveredAt = now.ms + INGESTION_LATENCY;
    // A lost acknowledgement: the same row arrives again twenty minutes later (at-least-once delivery).
    const [late] = ingested;
    ingested.push({ row: late!.row, ingestedMs: deliveredAt + 20 * MIN });
  }, 240_000);

  afterAll(async () => {
    await harness.stop();
  });

  /** Every scheduled run of the rule from the attack to two hours after delivery. */
  const runs = () => {
    const out: number[] = [];
    for (
      let t = Math.floor(ATTACK / schedule.frequencyMs) * schedule.frequencyMs;
      t < deliveredAt + 2 * HOUR;
      t += schedule.frequencyMs
    ) {
      out.push(t + SENTINEL_DELAY);
    }
    return out;
  };

  it('the delivered row is three hours late: its TimeGenerated is the detection slot', () => {
    expect(ingested).toHaveLength(2);
    const row = ingested[0]!;
    expect(row.row.Caller).toBe('admin@contoso.com');
    expect(Date.parse(String(row.row.TimeGenerated))).toBe(slot);
    expect(row.ingestedMs - slot).toBeGreaterThanOrEqual(3 * HOUR);
  });

  it('the rule raises it exactly once, in the first run after it arrived, and it makes exactly one incident', () => {
    const raised = runRule(ruleQuery, ingested, runs());
    const alertId = ingested[0]!.row.AlertId;
    expect(raised.map((a) => a.row.AlertId)).toEqual([alertId]);
    const firstRunAfter = runs().find((r) => r >= deliveredAt)!;
    expect(raised[0]!.runMs).toBe(firstRunAfter);
    expect(raised[0]!.row.TimeGenerated).toBe(slot);
    expect(raised[0]!.row.AccountUpn).toBe('admin@contoso.com');
    expect(incidents(raised, schedule)).toHaveLength(1);
  }, 180_000);

  it('negative control: the previous rule, selecting by TimeGenerated over the last hour, never raises it', () => {
    expect(runRule(TIME_GENERATED_RULE, ingested, runs())).toEqual([]);
  }, 180_000);

  it("an alert arriving at any minute of the rule's cycle is raised, at most twice (the lateStart overlap of two runs), and makes one incident", () => {
    const lateStartMs = 2 * MIN;
    expect(ruleQuery).toMatch(/^let lateStart = 2m;$/m);
    const cycle = runs().filter((r) => r > slot && r <= slot + 2 * HOUR);
    for (let offset = 0; offset < 30 * MIN; offset += MIN) {
      const arrival = slot + offset;
      const raised = runRule(
        ruleQuery,
        [{ row: { ...ingested[0]!.row, AlertId: `at-${offset}` }, ingestedMs: arrival }],
        cycle,
      );
      const inOverlap = cycle.some((r) => r >= arrival && r - arrival < lateStartMs);
      expect(raised.length, `arrival +${offset / MIN} min`).toBe(inOverlap ? 2 : 1);
      expect(incidents(raised, schedule), `arrival +${offset / MIN} min`).toHaveLength(1);
    }
  }, 180_000);
});

describe('test/support/kqlEval.ts, the evaluator the test above relies on', () => {
  const row = (over: Record<string, unknown>): IngestedRow => ({
    row: { TimeGenerated: '2026-01-01T10:00:00Z', AlertId: 'a', Caller: 'u@contoso.com', ...over },
    ingestedMs: Date.UTC(2026, 0, 1, 10, 5),
  });
  const run = (query: string, rows: IngestedRow[], nowMs = Date.UTC(2026, 0, 1, 10, 10)) =>
    evaluateKql(query, { schemas: [alertsTable()], data: { [TABLE]: rows }, nowMs });

  it('where, summarize by, arg_max(x, *), ingestion_time, ago, project', () => {
    const out = run(
      `${TABLE} | extend I = ingestion_time() | summarize First = min(I), arg_max(TimeGenerated, *) by AlertId | where First > ago(10m) | project AlertId, Caller, First`,
      [
        row({}),
        row({ AlertId: 'b', TimeGenerated: '2026-01-01T09:00:00Z', Caller: 'old' }),
        row({ AlertId: 'b', Caller: 'new' }),
      ],
    );
    expect(out).toEqual([
      { AlertId: 'a', Caller: 'u@contoso.com', First: Date.UTC(2026, 0, 1, 10, 5) },
      { AlertId: 'b', Caller: 'new', First: Date.UTC(2026, 0, 1, 10, 5) },
    ]);
    expect(run(`${TABLE} | where ingestion_time() > ago(4m)`, [row({})])).toEqual([]);
  });

  it('string functions as Kusto has them: contains ignores case, replace_regex with Unicode classes, substring', () => {
    const [out] = run(
      `${TABLE} | extend c = Caller contains 'CONTOSO', r = replace_regex(Operation, @'[\\p{Cc}\\p{Cf}]', ''), s = substring('abcdef', 1, 3), n = strlen('abc') | project c, r, s, n`,
      [row({ Operation: 'a\u202eb\u0007c' })],
    );
    expect(out).toEqual({ c: true, r: 'abc', s: 'bcd', n: 3 });
  });

  it('throws for what it does not implement, and for a query that does not bind', () => {
    expect(() => run(`${TABLE} | take 1`, [])).toThrow(/unsupported/);
    expect(() => run(`${TABLE} | extend x = toupper(Caller)`, [row({})])).toThrow(/unsupported/);
    expect(() => run(`${TABLE} | where Nope > 1`, [])).toThrow(/does not bind/);
  });

  it('the rule still binds while the new table is missing (union isfuzzy): warnings only', () => {
    const a = analyseKql(ruleQuery, { tables: [] });
    expect(a.diagnostics.length).toBeGreaterThan(0);
    expect(
      a.diagnostics.every((d) => d.severity === 'Warning'),
      JSON.stringify(a.diagnostics),
    ).toBe(true);
    expect(a.resultColumns.map(([n]) => n)).toContain('OperationDisplay');
  });
});
