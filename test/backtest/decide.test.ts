/**
 * Unit tests of the backtest's pure parts on hand-made findings: re-deciding alerts at a threshold (episodes,
 * daily cap, re-raised ids), the one setting that silences a noisy pair, escaping in the report and on the
 * terminal.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

import { describe, expect, test } from 'vitest';

import type { RareFinding } from '../../shared/alerts/alert.js';
import type { EpisodePolicy } from '../../shared/alerts/episodes.js';
import { decideAt, type ThresholdDecision } from '../../shared/backtest/decide.js';
import { formatBacktest, terminalSafe } from '../../shared/backtest/format.js';
import { type MetricsContext, thresholdResult } from '../../shared/backtest/metrics.js';
import { FindingRecorder, type RecordedTick } from '../../shared/backtest/record.js';
import { escapeHtml, renderReport } from '../../shared/backtest/report.js';
import type { BacktestResults, ThresholdResult } from '../../shared/backtest/types.js';
import { loadSettings } from '../../shared/config/settings.js';
import { parseEgressRanges } from '../../shared/geo/egress.js';
import type { City, Network } from '../../shared/geo/types.js';
import { Allowlist, RuleSet } from '../../shared/ops/allowlist.js';

const HOUR = 3_600_000;
const DAY = 86_400_000;
const T0 = Date.UTC(2026, 8, 7);
const DEFAULTS = { name: 'Unusual City', severity: 'Low', riskScore: 21, detectorVersion: 'test' };
const POLICY: EpisodePolicy = { cooldownMs: 24 * HOUR, rescoreMargin: 20, dailyCap: 50 };

const city = (
  key: string,
  name: string,
  country: string,
  lat: number,
  lon: number,
  egress?: string,
): City => ({
  key,
  ...(key.startsWith('g:') ? { geonameId: Number(key.slice(2)) } : {}),
  name,
  region: '',
  country,
  countryName: country,
  latitude: lat,
  longitude: lon,
  ...(egress !== undefined ? { egress } : {}),
});
const FRANKFURT = city('g:2925533', 'Frankfurt am Main', 'DE', 50.11, 8.68);
const PARIS = city('g:2988507', 'Paris', 'FR', 48.85, 2.35);
const LAGOS = city('g:2332459', 'Lagos', 'NG', 6.45, 3.39);
const VPN = city('e:CorpVPN', 'CorpVPN', '', 0, 0, 'CorpVPN');

function finding(o: {
  caller: string;
  place: City;
  hour: number;
  score: number;
  op?: string;
  ip?: string;
  ips?: string[];
  networks?: Network[];
  familiar?: boolean;
}): RareFinding {
  const op = o.op ?? 'MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION';
  const hourMs = T0 + o.hour * HOUR;
  return {
    observation: {
      operationKey: op.toLowerCase(),
      operation: op,
      city: o.place,
      hourMs,
      events: 1,
      callers: [],
    },
    activity: {
      caller: o.caller,
      callerType: 'user',
      ips: o.ips ?? [o.ip ?? '46.101.99.10'],
      ...(o.networks !== undefined ? { networks: o.networks } : {}),
      events: 1,
      firstMs: hourMs + 60_000,
      lastMs: hourMs + 120_000,
      resourceIds: [],
      correlationIds: [],
      subscriptionId: 's',
      resourceGroup: 'rg',
    },
    rarity: {
      score: o.score,
      rarity: o.score,
      probability: 1e-3,
      seenForOperation: false,
      established: false,
      hoursSeen: 0,
      rawHoursSeen: 0,
      missingMass: 0.1,
      tenantPrior: 0.1,
      tenantShare: 0,
      seenInTenant: false,
      distanceFactor: 1,
      newCountryForOperation: false,
      operationCountryBasis: 'established',
      newCountryForTenant: false,
      countrySeenInTenant: false,
      quarantinedHours: 0,
      tenantQuarantinedHours: 0,
      nearestBasis: 'established',
      operationCities: 0,
      callerBoost: 1,
      networkFactor: 1,
      throughKnownNetwork: false,
      networkCapped: false,
      absence: 1,
      quarantinedForCaller: false,
      newCityForCaller: false,
      familiarToCaller: o.familiar ?? false,
      learningFactor: 1,
      operationActiveHours: 100,
      tenantDays: 30,
      capped: o.familiar ?? false,
      knownCities: [],
      operationHours: 100,
      sentence: 'test',
    },
  };
}

/** One run per hour with findings, at the end of the hour (as the timer would raise them). */
function ticksOf(fs: RareFinding[]): RecordedTick[] {
  const byTick = new Map<number, RareFinding[]>();
  for (const f of fs) {
    const t = f.observation.hourMs + HOUR;
    byTick.set(t, [...(byTick.get(t) ?? []), f]);
  }
  return [...byTick.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([tickMs, findings]) => ({ tickMs, findings }));
}

function resultAt(
  threshold: number,
  fs: RareFinding[],
  set: Record<string, string> = {},
  labels?: MetricsContext['labels'],
): ThresholdResult {
  const ticks = ticksOf(fs);
  const memo = new Map<number, ThresholdDecision>();
  const decide = (t: number) => memo.get(t) ?? memo.set(t, decideAt(ticks, t, POLICY, DEFAULTS)).get(t)!;
  const ctx: MetricsContext = {
    ...(labels !== undefined ? { labels } : {}),
    period: { startMs: T0, endMs: T0 + 10 * DAY, days: 10 },
    settings: loadSettings({}, set),
    ticks,
    decide,
    decideAllowing: (t, allowed) =>
      decideAt(ticks, t, POLICY, DEFAULTS, (f) => (allowed(f) ? 'allowed' : undefined)),
    top: 10,
  };
  return thresholdResult(decide(threshold), 50, ctx);
}

/** Backtest results around one threshold's result, as the report and the console take them. */
function resultsOf(r: ThresholdResult, text: string): BacktestResults {
  return {
    tool: 'unusual-city backtest',
    version: 'test',
    generatedAt: new Date(T0).toISOString(),
    files: [text],
    labels: text,
    period: { start: new Date(T0).toISOString(), end: new Date(T0 + 10 * DAY).toISOString(), days: 10 },
    thresholds: [30],
    set: { UC_ALERT_NAME: text },
    replays: 1,
    variants: [
      {
        name: 'current settings',
        currentThreshold: 30,
        method: 'replay',
        replay: {
          events: 1,
          runs: 1,
          observations: 1,
          internalEvents: 0,
          noCityEvents: 0,
          notFoundEvents: 0,
          scores: 1,
          findingsKept: 1,
          seconds: 0,
        },
        scoreHistogram: { binWidth: 5, counts: new Array<number>(20).fill(1) },
        results: [{ ...r, current: true }],
      },
      {
        name: `UC_ALERT_NAME=${text}`,
        change: { setting: 'UC_ALERT_NAME', value: text },
        currentThreshold: 30,
        method: 'decision',
        replay: {
          events: 1,
          runs: 1,
          observations: 1,
          internalEvents: 0,
          noCityEvents: 0,
          notFoundEvents: 0,
          scores: 1,
          findingsKept: 1,
          seconds: 0,
        },
        scoreHistogram: { binWidth: 5, counts: new Array<number>(20).fill(1) },
        results: [{ ...r, current: true }],
      },
    ],
  };
}

describe('decideAt', () => {
  test('keeps episodes across runs, filters by threshold, counts the daily cap per run day', () => {
    const fs = [
      finding({ caller: 'a', place: PARIS, hour: 1, score: 60 }),
      finding({ caller: 'a', place: PARIS, hour: 3, score: 70 }), // same episode, < 60 + 20: joins silently
      finding({ caller: 'a', place: PARIS, hour: 5, score: 85 }), // 25 above: a new alert
      finding({ caller: 'b', place: PARIS, hour: 5, score: 40 }),
      finding({ caller: 'a', place: PARIS, hour: 40, score: 55 }), // after the cooldown: a new episode
    ];
    const at50 = decideAt(ticksOf(fs), 50, POLICY, DEFAULTS);
    expect(at50.alerts.map((a) => [a.alert.Caller, a.alert.AnomalyScore])).toEqual([
      ['a', 60],
      ['a', 85],
      ['a', 55],
    ]);
    expect(at50.suppressedByCooldown).toBe(1);
    expect(at50.alerts[1]!.top).toBe(fs[2]);
    const at30 = decideAt(ticksOf(fs), 30, POLICY, DEFAULTS);
    expect(at30.alerts.map((a) => a.alert.Caller)).toEqual(['a', 'a', 'b', 'a']);

    const capped = decideAt(ticksOf(fs), 30, { ...POLICY, dailyCap: 2 }, DEFAULTS);
    // Day 1 holds runs at hours 2, 4 and 6: two alerts, then the cap; day 2 (hour 41) starts again.
    expect(capped.alerts.map((a) => a.alert.AnomalyScore)).toEqual([60, 85, 55]);
    expect(capped.suppressedByCap).toBe(1);
  });

  test('allowlists keep findings from the decision and are counted', () => {
    const fs = [
      finding({ caller: 'a', place: PARIS, hour: 1, score: 60 }),
      finding({ caller: 'b', place: LAGOS, hour: 1, score: 70 }),
      finding({ caller: 'c', place: PARIS, hour: 2, score: 20 }),
    ];
    const d = decideAt(ticksOf(fs), 50, POLICY, DEFAULTS, (f) =>
      f.observation.city.key === PARIS.key ? 'city Paris' : undefined,
    );
    expect(d.alerts.map((a) => a.alert.Caller)).toEqual(['b']);
    expect(d.allowlisted).toBe(1); // the score 20 is below the threshold: never reached the allowlist
  });

  test('an alert raised again by a later run (same id) is listed once', () => {
    const f = finding({ caller: 'a', place: PARIS, hour: 1, score: 80 });
    const ticks: RecordedTick[] = [
      { tickMs: T0 + 2 * HOUR, findings: [f] },
      { tickMs: T0 + 2 * HOUR + 15 * 60_000, findings: [f] },
    ];
    expect(decideAt(ticks, 50, POLICY, DEFAULTS).alerts).toHaveLength(1);
  });

  test('the recorder keeps findings at or above its floor and bins every score', () => {
    const r = new FindingRecorder(30);
    r.onFindings(T0 + HOUR, [
      finding({ caller: 'a', place: PARIS, hour: 0, score: 0 }),
      finding({ caller: 'b', place: PARIS, hour: 0, score: 29.9 }),
      finding({ caller: 'c', place: PARIS, hour: 0, score: 30 }),
      finding({ caller: 'd', place: PARIS, hour: 0, score: 100 }),
    ]);
    r.onFindings(T0 + 2 * HOUR, []);
    expect(r.ticks).toHaveLength(1);
    expect(r.ticks[0]!.findings.map((f) => f.activity.caller)).toEqual(['c', 'd']);
    expect(r.scores).toBe(4);
    expect(r.histogram[0]).toBe(1);
    expect(r.histogram[5]).toBe(1);
    expect(r.histogram[6]).toBe(1);
    expect(r.histogram[19]).toBe(1);
    expect(() => r.onFindings(T0, [finding({ caller: 'e', place: PARIS, hour: 0, score: 90 })])).toThrow(
      /order/,
    );
  });
});

const LISTKEYS = 'MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION';
const ROLES = 'MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE';
const VMS = 'MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE';
const DEPLOY = 'MICROSOFT.RESOURCES/DEPLOYMENTS/WRITE';
const M247: Network = { asn: 9009, org: 'M247 Europe SRL' };
const HOME: Network = { asn: 3215, org: 'Orange' };

/** The alerts left when the proposed rule is stored as the allow table stores it and matched by its code. */
function afterRule(fs: RareFinding[], threshold: number, rule: { kind: string; value: string }) {
  const allow = new Allowlist(
    new RuleSet([{ kind: rule.kind as 'caller+city', value: rule.value, source: 'allow table' }]),
  );
  return decideAt(ticksOf(fs), threshold, POLICY, DEFAULTS, allow.suppress).alerts.map((a) => [
    a.alert.Caller,
    a.alert.SrcGeoCity,
    a.alert.Operation,
  ]);
}

describe('the narrowest change that silences a noisy pair', () => {
  test('a single commuter: (caller, city) with the command line, never the whole city', () => {
    // Ann works from Paris on Fridays: four weeks of alerts there, one at 100 (no threshold silences it).
    const commute = [1, 8, 15, 22].map((week, i) =>
      finding({ caller: 'Ann@Contoso.com', place: PARIS, hour: week * 24 + 9, score: i === 0 ? 100 : 70 }),
    );
    const other = finding({ caller: 'bob@contoso.com', place: PARIS, hour: 200, score: 80, op: ROLES });
    const fs = [...commute, other];
    const r = resultAt(50, fs);
    const pair = r.topPairs.find((p) => p.operation === LISTKEYS)!;
    expect(pair.alerts).toBe(4);
    expect(pair.silence).toMatchObject({
      setting: 'baseline allow caller+city',
      value: 'ann@contoso.com g:2988507',
      rule: { kind: 'caller+city', value: 'ann@contoso.com g:2988507' },
      assignment: `unusual-city baseline allow caller+city ann@contoso.com 2988507 --for 30d --by "$USER" --reason 'backtest: ann@contoso.com from Paris, FR'`,
      at: { alerts: 1 },
    });
    expect(pair.silence!.why).toMatch(
      /^ann@contoso\.com alone raised the 4 alerts of .* from Paris, FR: allowing that caller there keeps every other caller \(an attacker too\) from Paris, FR alerting\. Allowed: 1 alert\(s\) in all/,
    );
    // Bob's one alert from Paris gets its own rule; no pair is told to allow the city.
    expect(r.topPairs.map((p) => p.silence?.setting)).toEqual([
      'baseline allow caller+city',
      'baseline allow caller+city',
    ]);
    // Stored and matched by the allow table's code, the rule silences Ann in Paris and nobody else.
    expect(afterRule(fs, 50, pair.silence!.rule!)).toEqual([['bob@contoso.com', 'Paris', ROLES]]);
    // The console shows the rule in the table and the whole command line below it; the report the command.
    const text = formatBacktest(resultsOf(r, 'ann'));
    expect(text).toContain('with the narrowest change that would silence each:');
    expect(text).toMatch(/ {2}allow caller\+city ann@contoso\.com g:2988507\n/);
    const row = r.topPairs.indexOf(pair) + 1;
    expect(text).toContain(`  Allow rules, by row:\n`);
    expect(text).toContain(`  ${row}. ${pair.silence!.assignment}\n`);
    const html = renderReport(resultsOf(r, 'ann'), [], () => 'ann');
    expect(html).toContain(`<td data-k="silence"><code>${escapeHtml(pair.silence!.assignment)}</code></td>`);
  });

  test('one caller roaming cities through one network: (caller, network); another network: (caller, city)', () => {
    const vpn = [PARIS, FRANKFURT, LAGOS].map((place, i) =>
      finding({ caller: 'ann@contoso.com', place, hour: 1 + i * 30, score: 70, networks: [M247] }),
    );
    const r = resultAt(50, vpn);
    expect(r.topPairs).toHaveLength(3);
    for (const p of r.topPairs)
      expect(p.silence).toMatchObject({
        setting: 'baseline allow caller+network',
        value: 'ann@contoso.com AS9009',
        assignment: `unusual-city baseline allow caller+network ann@contoso.com AS9009 --for 30d --by "$USER" --reason 'backtest: ann@contoso.com roams through AS9009'`,
        at: { alerts: 0 },
      });
    expect(r.topPairs[0]!.silence!.why).toContain('came from 3 cities, all through AS9009 (M247 Europe SRL)');
    expect(afterRule(vpn, 50, r.topPairs[0]!.silence!.rule!)).toEqual([]);
    // One of the cities through her home broadband: no one network, so each city on its own.
    const mixed = [...vpn.slice(0, 2), { ...vpn[2]!, activity: { ...vpn[2]!.activity, networks: [HOME] } }];
    expect(new Set(resultAt(50, mixed).topPairs.map((p) => p.silence?.setting))).toEqual(
      new Set(['baseline allow caller+city']),
    );
    // Findings without networks (no ASN data): (caller, city).
    const bare = vpn.map((f) => ({ ...f, activity: { ...f.activity, networks: undefined } }));
    expect(resultAt(50, bare).topPairs[0]!.silence?.setting).toBe('baseline allow caller+city');
  });

  test('several callers of one operation: (operation, city)', () => {
    const fs = [
      finding({ caller: 'a', place: FRANKFURT, hour: 1, score: 70, ip: '46.101.1.1' }),
      finding({ caller: 'b', place: FRANKFURT, hour: 30, score: 75, ip: '46.101.2.2' }),
      finding({ caller: 'c', place: FRANKFURT, hour: 60, score: 80, op: ROLES }),
    ];
    const r = resultAt(50, fs);
    const pair = r.topPairs.find((p) => p.operation === LISTKEYS)!;
    expect(pair.silence).toMatchObject({
      setting: 'baseline allow operation+city',
      value: `${LISTKEYS.toLowerCase()} g:2925533`,
      assignment: `unusual-city baseline allow operation+city ${LISTKEYS.toLowerCase()} 2925533 --for 30d --by "$USER" --reason 'backtest: ${LISTKEYS} from Frankfurt am Main, DE'`,
    });
    expect(afterRule(fs, 50, pair.silence!.rule!)).toEqual([['c', 'Frankfurt am Main', ROLES]]);
  });

  test('many callers of many operations: the whole city', () => {
    // Three callers, three operations each, from many addresses (not one shared egress point).
    const fs = ['a', 'b', 'c'].flatMap((caller, i) =>
      [LISTKEYS, ROLES, VMS].map((op, j) =>
        finding({
          caller,
          place: PARIS,
          hour: 1 + i * 30 + j,
          score: 70 + j,
          op,
          ips: [1, 2, 3].map((k) => `5.48.${i * 10 + j}.${k}`),
        }),
      ),
    );
    const r = resultAt(50, [...fs, finding({ caller: 'd', place: LAGOS, hour: 200, score: 60, op: DEPLOY })]);
    const paris = r.topPairs.filter((p) => p.city === 'Paris');
    expect(paris.length).toBeGreaterThan(0);
    for (const p of paris) expect(p.silence).toMatchObject({ setting: 'UC_ALLOW_CITIES', value: '2988507' });
    expect(paris[0]!.silence!.why).toMatch(
      /^3 callers of 3 operations alert from Paris: allow the whole city \(geoname 2988507; or `baseline allow city 2988507 --for 30d`\)/,
    );
    // Two callers of two operations are not many: each pair keeps its narrow rule.
    const few = resultAt(
      50,
      fs.filter((f) => f.activity.caller !== 'c' && f.observation.operation !== VMS),
    );
    expect(new Set(few.topPairs.map((p) => p.silence?.setting))).toEqual(
      new Set(['baseline allow operation+city']),
    );
  });

  test('a caller name is one shell word in the command, whatever it holds', async () => {
    const evil = "x';touch${IFS}/tmp/pwned;'$(id)`id`";
    const r = resultAt(50, [finding({ caller: evil, place: PARIS, hour: 1, score: 70 })]);
    const command = r.topPairs[0]!.silence!.assignment;
    // The words a POSIX shell makes of the command: the caller comes back whole and nothing runs.
    const { stdout } = await promisify(execFile)('sh', [
      '-c',
      `printf '%s\\n' ${command.replace('"$USER"', 'WHO')}`,
    ]);
    const words = stdout.split('\n').slice(0, -1);
    expect(words.slice(0, 6)).toEqual([
      'unusual-city',
      'baseline',
      'allow',
      'caller+city',
      evil.toLowerCase(),
      '2988507',
    ]);
    expect(words.at(-1)).toBe(`backtest: ${evil.toLowerCase()} from Paris, FR`);
  });

  test('callers familiar with the city: UC_FAMILIAR_SCORE_CAP when no allow rule can name the pair', () => {
    // An operation name the allow table refuses (a space): no (operation, city) rule; the score cap still applies.
    const op = 'Custom Provider/run action';
    const r = resultAt(30, [
      finding({ caller: 'a', place: FRANKFURT, hour: 1, score: 40, familiar: true, op }),
      finding({ caller: 'b', place: FRANKFURT, hour: 30, score: 40, familiar: true, op }),
    ]);
    expect(r.topPairs).toHaveLength(1);
    expect(r.topPairs[0]).toMatchObject({ alerts: 2, callerCount: 2, city: 'Frankfurt am Main' });
    expect(r.topPairs[0]!.silence).toMatchObject({ setting: 'UC_FAMILIAR_SCORE_CAP', value: '29' });
  });

  test('with labels, the caller rule is for the callers of the false alerts, not the attacker in the pair', () => {
    const labels = {
      startMs: T0,
      endMs: T0 + 10 * DAY,
      attacks: [
        {
          id: 'A1',
          description: '',
          caller: 'x',
          ips: ['41.58.99.10'],
          startMs: T0 + 50 * HOUR,
          endMs: T0 + 51 * HOUR,
        },
      ],
    };
    const r = resultAt(
      30,
      [
        finding({ caller: 'a', place: FRANKFURT, hour: 1, score: 40 }),
        finding({ caller: 'x', place: FRANKFURT, hour: 50, score: 45, ip: '41.58.99.10' }),
      ],
      {},
      labels,
    );
    expect(r.topPairs).toHaveLength(1);
    expect(r.topPairs[0]).toMatchObject({ alerts: 2, falseAlerts: 1, callerCount: 2 });
    // (operation, city) would hide the attack; Ann's own rule silences her false alert and keeps it.
    expect(r.topPairs[0]!.silence).toMatchObject({
      setting: 'baseline allow caller+city',
      value: 'a g:2925533',
      at: { alerts: 1, detected: 1 },
    });
  });

  test('an unknown caller from a listed egress range: UC_EGRESS_SCORE_CAP below the threshold', () => {
    const r = resultAt(30, [finding({ caller: '', place: VPN, hour: 1, score: 40 })]);
    expect(r.topPairs[0]!.silence?.assignment).toBe('UC_EGRESS_SCORE_CAP=29');
    expect(r.alertCities[0]).toMatchObject({ cityKey: 'e:CorpVPN', city: 'CorpVPN' });
    // A known caller gets the rule for them on that range.
    const known = resultAt(30, [finding({ caller: 'a', place: VPN, hour: 1, score: 40 })]);
    expect(known.topPairs[0]!.silence).toMatchObject({
      value: 'a e:CorpVPN',
      assignment: `unusual-city baseline allow caller+city a e:CorpVPN --for 30d --by "$USER" --reason 'backtest: a from CorpVPN'`,
    });
  });

  test('many callers from one IP: an UC_EGRESS_RANGES entry that parses, appended to the current value', () => {
    const fs = ['a', 'b', 'c'].map((c, i) =>
      finding({ caller: c, place: FRANKFURT, hour: 1 + i * 30, score: 70 }),
    );
    const r = resultAt(50, fs, { UC_EGRESS_RANGES: 'AzureWestEurope=20.50.0.0/16' });
    const s = r.topPairs[0]!.silence!;
    expect(s.setting).toBe('UC_EGRESS_RANGES');
    expect(s.value).toBe('AzureWestEurope=20.50.0.0/16;Egress-Frankfurt-am-Main=46.101.99.10/32');
    expect(parseEgressRanges(s.value).match('46.101.99.10')).toBe('Egress-Frankfurt-am-Main');
    // An egress cap at or above the threshold would not silence it: then the operation in that city.
    const high = resultAt(30, fs);
    expect(high.topPairs[0]!.silence?.setting).toBe('baseline allow operation+city');
  });

  test('a higher threshold, with what the whole tenant gets at it, when the caller rule would hide an attack', () => {
    // Ann's Paris listKeys are noise; her account is then abused from Paris (another address, another operation).
    const labels = {
      startMs: T0,
      endMs: T0 + 10 * DAY,
      attacks: [
        {
          id: 'A1',
          description: '',
          caller: 'a',
          ips: ['41.58.99.10'],
          startMs: T0 + 80 * HOUR,
          endMs: T0 + 81 * HOUR,
        },
      ],
    };
    const r = resultAt(
      50,
      [
        finding({ caller: 'a', place: PARIS, hour: 1, score: 60 }),
        finding({ caller: 'a', place: PARIS, hour: 30, score: 64.2 }),
        finding({ caller: 'a', place: PARIS, hour: 80, score: 95, op: ROLES, ip: '41.58.99.10' }),
      ],
      {},
      labels,
    );
    const paris = r.topPairs.find((p) => p.operation === LISTKEYS)!;
    expect(paris.alerts).toBe(2);
    expect(paris.silence).toMatchObject({
      setting: 'UC_ALERT_THRESHOLD',
      value: '64.3',
      at: { alerts: 1, detected: 1 },
    });
    expect(paris.silence!.at!.alertsPerDay).toBeCloseTo(0.1, 10);
  });

  test('with labels, the narrow rule keeps the attack that allowing a city would hide', () => {
    const labels = {
      startMs: T0,
      endMs: T0 + 10 * DAY,
      attacks: [
        {
          id: 'A1',
          description: '',
          caller: 'x',
          ips: ['41.58.99.10'],
          startMs: T0 + 50 * HOUR,
          endMs: T0 + 51 * HOUR,
        },
      ],
    };
    const attack = finding({ caller: 'x', place: LAGOS, hour: 50, score: 55, ip: '41.58.99.10' });
    // Noise from the attack's own city: the (caller, city) rule silences it and still detects A1.
    const same = resultAt(
      50,
      [finding({ caller: 'a', place: LAGOS, hour: 1, score: 60 }), attack],
      {},
      labels,
    );
    expect(same.evaluation).toMatchObject({ detected: 1, falseAlerts: 1 });
    expect(same.topPairs).toHaveLength(1); // the attack's pair is not noise
    expect(same.topPairs[0]!.silence).toMatchObject({
      setting: 'baseline allow caller+city',
      value: 'a g:2332459',
      at: { alerts: 1, detected: 1, attacks: 1 },
    });
    expect(same.topPairs[0]!.silence!.why).not.toContain('Loses');
  });
});

describe('escaping', () => {
  const EVIL = `<script>alert(1)</script><img src=x onerror="alert(2)">'&\``;

  test('escapeHtml leaves no markup character', () => {
    expect(escapeHtml(EVIL)).not.toMatch(/[<>"'`]/);
    expect(escapeHtml('a&b')).toBe('a&#38;b');
  });

  test('terminalSafe removes control characters (ANSI escapes) from data', () => {
    expect(terminalSafe('evil\u001b[2J\u0007\r\nname\u009b')).toBe(
      'evil\uFFFD[2J\uFFFD\uFFFD\uFFFDname\uFFFD',
    );
  });

  test('the report puts every data string through escaping', () => {
    const r = resultAt(30, [
      finding({ caller: EVIL, place: city('g:1', EVIL, EVIL, 10, 10), hour: 1, score: 90, op: EVIL }),
    ]);
    const results = resultsOf(r, EVIL);
    const alerts = decideAt(
      ticksOf([
        finding({ caller: EVIL, place: city('g:1', EVIL, EVIL, 10, 10), hour: 1, score: 90, op: EVIL }),
      ]),
      30,
      POLICY,
      DEFAULTS,
    ).alerts.map((a) => a.alert);
    expect(alerts).toHaveLength(1);
    const html = renderReport(results, alerts, () => EVIL);
    expect(html).not.toContain('<script');
    expect(html).not.toContain('<img');
    expect(html).not.toContain('onerror="');
    expect(html).toContain(escapeHtml('<script>alert(1)'));
    expect(html).toMatch(/Content-Security-Policy" content="default-src 'none';/);
  });
});
