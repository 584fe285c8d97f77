/** Verdicts in simulated runs: replay applies each at its ClosedTime (VerdictFeed), the allowlist follows. */
import { describe, expect, it } from 'vitest';

import { MemoryAlertSink } from '../../shared/alerts/sinks.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import { loadSettings } from '../../shared/config/settings.js';
import { analystVerdict } from '../../shared/demo/suite/analyst.js';
import { AllowlistProvider } from '../../shared/ops/allowlist.js';
import { verdictPolicy } from '../../shared/ops/verdicts.js';
import { type Verdict, VerdictFeed } from '../../shared/pipeline/verdicts.js';
import { ev, IP } from '../support/events.js';
import { DEPLOY, LISTKEYS, londonTeam, replayInto } from '../support/londonTeam.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 9, 5);
const TRIP = T0 + 10 * DAY + 3 * HOUR + 10 * MIN;
const settings = loadSettings({ UC_TICK_INTERVAL: '1h', UC_LOOKBACK: '2h', UC_ALERT_COOLDOWN: '1h' });
// dev1 travels to New York: a deployment, then, three hours later, listing keys (new to the episode).
const events = [
  ...londonTeam(10),
  ev(TRIP, DEPLOY, 'dev1@contoso.com', IP.newYork),
  ev(TRIP + 3 * HOUR, LISTKEYS, 'dev1@contoso.com', IP.newYork),
];

async function run(verdicts: (first: string) => Verdict[]): Promise<{ callers: string[]; first: string }> {
  const store = SqliteStore.open(':memory:');
  const sink = new MemoryAlertSink();
  const provider = await AllowlistProvider.fromSettings(settings);
  const firstId = { value: '' };
  const feed = new VerdictFeed(store, verdictPolicy(store, settings));
  let seen = 0;
  await replayInto(store, events, {
    settings,
    sink,
    beforeRun: async (tickMs) => {
      for (; seen < sink.alerts.length; seen++) {
        firstId.value ||= sink.alerts[seen]!.AlertId;
        feed.add(verdicts(sink.alerts[seen]!.AlertId));
      }
      return (await feed.due(tickMs)) ? { suppress: (await provider.forRun(store)).suppress } : undefined;
    },
  });
  await store.close();
  return { callers: sink.alerts.map((a) => a.Caller), first: firstId.value };
}

describe('replay with verdicts', () => {
  it('a benign verdict closed after the first alert silences the trip; without it the update alert comes', async () => {
    const without = await run(() => []);
    expect(without.callers).toEqual(['dev1@contoso.com', 'dev1@contoso.com']);
    const benign = (id: string): Verdict[] => [
      {
        incidentNumber: 1,
        incidentName: '',
        classification: 'BenignPositive',
        reason: 'SuspiciousButExpected',
        comment: '',
        owner: 'ana@contoso.com',
        modifiedBy: '',
        closedTimeMs: TRIP + HOUR,
        alertId: id,
      },
    ];
    const withVerdict = await run(benign);
    expect(withVerdict.callers).toEqual(['dev1@contoso.com']);
    expect(withVerdict.first).toBe(without.first);
  });

  it("the suite's simulated analyst: attack → TruePositive, benign label → BenignPositive, else FalsePositive", async () => {
    const { alerts } = await (async () => {
      const store = SqliteStore.open(':memory:');
      const sink = new MemoryAlertSink();
      await replayInto(store, events, { settings, sink });
      await store.close();
      return { alerts: sink.alerts };
    })();
    const a = alerts[0]!;
    const window = { startMs: TRIP - HOUR, endMs: TRIP + 5 * HOUR };
    const labels = (kind: 'attack' | 'benign' | 'none') => ({
      startMs: T0,
      endMs: T0 + 11 * DAY,
      attacks:
        kind === 'attack'
          ? [{ id: 'a', description: '', caller: a.Caller, ips: [IP.newYork], ...window }]
          : [],
      benign:
        kind === 'benign'
          ? [{ id: 'b', class: 'trip-abroad', description: '', callers: [a.Caller], ips: [], ...window }]
          : [],
    });
    const v = (kind: 'attack' | 'benign' | 'none') => analystVerdict(a, labels(kind), 8, 5);
    expect(v('attack').classification).toBe('TruePositive');
    expect(v('benign').classification).toBe('BenignPositive');
    expect(v('none').classification).toBe('FalsePositive');
    expect(v('benign').closedTimeMs).toBe(Date.parse(a.TimeGenerated) + 8 * HOUR);
    expect(v('benign').alertId).toBe(a.AlertId);
  });
});
