/**
 * Allowlists from settings, the allow table and Azure service tags: parsing and validation, matching (which
 * allowlist a reason names), and their effect on runs — allowlisted findings never alert, are counted as
 * such, and are still learned; a table change is honoured by the next run.
 */
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import type { RareFinding } from '../../shared/alerts/alert.js';
import { MemoryAlertSink } from '../../shared/alerts/sinks.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import { loadSettings, SettingsError } from '../../shared/config/settings.js';
import type { City } from '../../shared/geo/types.js';
import {
  addAllowRule,
  Allowlist,
  AllowlistProvider,
  allowRulesFromSettings,
  AllowValueError,
  parseAllowValue,
  readAllowTable,
  removeAllowRule,
  RuleSet,
} from '../../shared/ops/allowlist.js';
import { readAudit } from '../../shared/ops/audit.js';
import { parseServiceTags } from '../../shared/ops/serviceTags.js';
import type { RarityScore } from '../../shared/scoring/score.js';
import { ev, IP, replayEvents } from '../support/events.js';
import { replayInto } from '../support/londonTeam.js';
import { dump, history, LISTKEYS, MIN, T0 } from './helpers.js';

const TAGS = fileURLToPath(new URL('./fixtures/ServiceTags_Public.json', import.meta.url));
const DAY = 86_400_000;

const LAGOS: City = {
  key: 'g:2332459',
  geonameId: 2332459,
  name: 'Lagos',
  region: 'Lagos',
  country: 'NG',
  countryName: 'Nigeria',
  latitude: 6.45,
  longitude: 3.39,
};

function finding(o: { operation?: string; city?: City; caller?: string; ips?: string[] } = {}): RareFinding {
  const operation = o.operation ?? LISTKEYS;
  return {
    observation: {
      operationKey: operation.toLowerCase(),
      operation,
      city: o.city ?? LAGOS,
      hourMs: T0,
      events: 1,
      callers: [],
    },
    activity: {
      caller: o.caller ?? 'admin@contoso.com',
      callerType: 'user',
      ips: o.ips ?? [IP.lagos],
      events: 1,
      firstMs: T0,
      lastMs: T0,
      resourceIds: [],
      correlationIds: [],
      subscriptionId: '',
      resourceGroup: '',
    },
    rarity: { score: 90 } as RarityScore,
  };
}

describe('allow rules: values', () => {
  it('canonicalises each kind and explains what is wrong', () => {
    expect(parseAllowValue('range', ['41.58.99.0/24'])).toEqual({ kind: 'range', value: '41.58.99.0/24' });
    expect(parseAllowValue('range', ['41.58.99.7'])).toEqual({ kind: 'range', value: '41.58.99.7/32' });
    expect(parseAllowValue('city', ['2643743'])).toEqual({ kind: 'city', value: 'g:2643743' });
    expect(parseAllowValue('city', ['c:gb'])).toEqual({ kind: 'city', value: 'c:GB' });
    expect(parseAllowValue('city', ['e:CorpVPN'])).toEqual({ kind: 'city', value: 'e:CorpVPN' });
    expect(parseAllowValue('caller', ['Admin@Contoso.com'])).toEqual({
      kind: 'caller',
      value: 'admin@contoso.com',
    });
    expect(parseAllowValue('operation', [LISTKEYS])).toEqual({
      kind: 'operation',
      value: LISTKEYS.toLowerCase(),
    });
    expect(parseAllowValue('operation+city', [LISTKEYS, '2332459'])).toEqual({
      kind: 'operation+city',
      value: `${LISTKEYS.toLowerCase()} g:2332459`,
    });
    expect(() => parseAllowValue('range', ['10.1.0.0/16'])).toThrow(/private range.*no effect/);
    expect(() => parseAllowValue('range', ['41.58.99.1/24'])).toThrow(/host bits/);
    expect(() => parseAllowValue('city', ['London'])).toThrow(AllowValueError);
    expect(() => parseAllowValue('operation+city', [LISTKEYS])).toThrow(/two values/);
    expect(() => parseAllowValue('country', ['NG'])).toThrow(/unknown kind/);
  });
});

describe('allow rules: settings and service tags', () => {
  it('reads every UC_ALLOW_* setting and the selected tags of the service tags file', async () => {
    const s = loadSettings({
      UC_ALLOW_RANGES: 'CorpVPN=41.58.99.0/24 2a02:c7f::/32;CI=20.60.1.0/24',
      UC_ALLOW_CITIES: '2643743',
      UC_ALLOW_CALLERS: 'CI@contoso.com',
      UC_ALLOW_OPERATIONS: 'Microsoft.Insights/diagnosticSettings/write',
      UC_SERVICE_TAGS_FILE: TAGS,
      // Case-insensitive, as Azure; two tags sharing 20.50.0.0/16 are fine.
      UC_ALLOW_SERVICE_TAGS: 'azurecloud.westeurope,Storage.WestEurope',
    });
    const rules = await allowRulesFromSettings(s);
    const by = (src: string) => rules.filter((r) => r.source === src).map((r) => [r.kind, r.value, r.label]);
    expect(by('UC_ALLOW_RANGES')).toEqual([
      ['range', '41.58.99.0/24', 'CorpVPN'],
      ['range', '2a02:c7f::/32', 'CorpVPN'],
      ['range', '20.60.1.0/24', 'CI'],
    ]);
    expect(by('UC_ALLOW_CITIES')).toEqual([['city', 'g:2643743', undefined]]);
    expect(by('UC_ALLOW_CALLERS')).toEqual([['caller', 'ci@contoso.com', undefined]]);
    expect(by('UC_ALLOW_OPERATIONS')).toEqual([
      ['operation', 'microsoft.insights/diagnosticsettings/write', undefined],
    ]);
    expect(by('UC_ALLOW_SERVICE_TAGS')).toEqual([
      ['range', '20.50.0.0/16', 'service tag AzureCloud.westeurope'],
      ['range', '51.145.0.0/16', 'service tag AzureCloud.westeurope'],
      ['range', '2a01:111:f100::/48', 'service tag AzureCloud.westeurope'],
      ['range', '20.50.0.0/16', 'service tag Storage.WestEurope'],
      ['range', '20.60.0.0/16', 'service tag Storage.WestEurope'],
    ]);
    const allow = new Allowlist(new RuleSet(rules));
    // 20.50.0.0/16 is in both tags: the first listed wins; a more specific setting range wins over a tag.
    expect(allow.suppress(finding({ ips: ['20.50.1.2'] }))).toBe(
      'service tag AzureCloud.westeurope (UC_ALLOW_SERVICE_TAGS)',
    );
    expect(allow.suppress(finding({ ips: ['20.60.1.9'] }))).toBe('CI (UC_ALLOW_RANGES)');
    expect(allow.suppress(finding({ ips: ['2a01:111:f100::1'] }))).toBe(
      'service tag AzureCloud.westeurope (UC_ALLOW_SERVICE_TAGS)',
    );
  });

  it('the service tags file: skips prefixes that can never match, and settings errors name what to fix', async () => {
    const { readFile } = await import('node:fs/promises');
    const parsed = parseServiceTags(await readFile(TAGS, 'utf8'), TAGS);
    expect(parsed.changeNumber).toBe(312);
    expect(parsed.tags.get('azurecloud.southafricanorth')?.prefixes.map((c) => c.text)).toEqual([
      '41.58.0.0/16',
      '102.37.0.0/16',
    ]);
    expect(parsed.skipped).toBe(2); // 10.0.0.0/8 (private) and "not-a-prefix"

    const err = (env: Record<string, string>, readText?: (p: string) => Promise<string>) =>
      allowRulesFromSettings(loadSettings(env), readText).then(
        () => undefined,
        (e: unknown) => e,
      );
    const unknown = await err({ UC_SERVICE_TAGS_FILE: TAGS, UC_ALLOW_SERVICE_TAGS: 'AzureCloud.westeuropa' });
    expect(unknown).toBeInstanceOf(SettingsError);
    expect(String(unknown)).toMatch(
      /UC_ALLOW_SERVICE_TAGS.*AzureCloud\.westeuropa is not; e\.g\. AzureCloud\.westeurope/,
    );
    expect(String(await err({ UC_ALLOW_SERVICE_TAGS: 'AzureCloud' }))).toMatch(/UC_SERVICE_TAGS_FILE=""/);
    expect(
      String(await err({ UC_SERVICE_TAGS_FILE: '/nowhere/tags.json', UC_ALLOW_SERVICE_TAGS: 'AzureCloud' })),
    ).toMatch(
      /UC_SERVICE_TAGS_FILE="\/nowhere\/tags.json": expected a readable Azure Service Tags JSON file/,
    );
    expect(
      String(
        await err({ UC_SERVICE_TAGS_FILE: 'x.json', UC_ALLOW_SERVICE_TAGS: 'AzureCloud' }, () =>
          Promise.resolve('{"value": []}'),
        ),
      ),
    ).toMatch(/not an Azure Service Tags file/);
    // A file without selected tags is not even read.
    expect(await err({ UC_SERVICE_TAGS_FILE: '/nowhere/tags.json' })).toBeUndefined();
  });

  it('handles the size of the real file: thousands of prefixes, matched quickly', async () => {
    const values = Array.from({ length: 40 }, (_, t) => ({
      name: `AzureCloud.region${t}`,
      properties: {
        addressPrefixes: Array.from({ length: 250 }, (_, i) => `${20 + (t % 60)}.${i}.${t}.0/24`),
      },
    }));
    const text = JSON.stringify({ values });
    const s = loadSettings({
      UC_SERVICE_TAGS_FILE: 'tags.json',
      UC_ALLOW_SERVICE_TAGS: values.map((v) => v.name).join(','),
    });
    const provider = await AllowlistProvider.fromSettings(s, () => Promise.resolve(text));
    expect(provider.settingsSize).toBe(10_000);
    const allow = await provider.forRun();
    const t0 = performance.now();
    let matched = 0;
    for (let i = 0; i < 20_000; i++)
      if (allow.suppress(finding({ ips: [`${20 + (i % 40)}.${i % 250}.${i % 40}.9`] })) !== undefined)
        matched++;
    expect(matched).toBe(20_000);
    expect(performance.now() - t0).toBeLessThan(2_000);
  });
});

describe('matching', () => {
  it('names the allowlist that matched; a range needs every address of the caller', async () => {
    const store = SqliteStore.open(':memory:');
    const who = { by: 'alice', reason: 'red team exercise', atMs: Date.UTC(2026, 10, 2) };
    await addAllowRule(store, parseAllowValue('operation+city', [LISTKEYS, '2332459']), who);
    await addAllowRule(store, parseAllowValue('caller', ['Pentest@Contoso.com']), who);
    await addAllowRule(store, parseAllowValue('range', ['41.58.99.0/24']), who);
    const provider = await AllowlistProvider.fromSettings(loadSettings({ UC_ALLOW_CITIES: '2643743' }));
    const allow = await provider.forRun(store);
    const table = '(allow table: alice, 2026-11-02: "red team exercise")';
    expect(allow.suppress(finding())).toBe(`operation+city ${LISTKEYS.toLowerCase()} g:2332459 ${table}`);
    expect(
      allow.suppress(
        finding({
          operation: 'Microsoft.Compute/virtualMachines/write',
          caller: 'PENTEST@contoso.com',
          ips: ['8.8.8.8'],
        }),
      ),
    ).toBe(`caller pentest@contoso.com ${table}`);
    expect(allow.suppress(finding({ operation: 'Microsoft.Compute/virtualMachines/write' }))).toBe(
      `range 41.58.99.0/24 ${table}`,
    );
    // One address outside the allowed range keeps the finding.
    expect(
      allow.suppress(
        finding({ operation: 'Microsoft.Compute/virtualMachines/write', ips: [IP.lagos, '41.59.0.1'] }),
      ),
    ).toBeUndefined();
    expect(
      allow.suppress(
        finding({
          operation: 'Microsoft.Compute/virtualMachines/write',
          city: { ...LAGOS, key: 'g:2643743', name: 'London' },
          ips: ['8.8.8.8'],
        }),
      ),
    ).toBe('city g:2643743 (UC_ALLOW_CITIES)');
    expect(allow.suppressed).toBe(4);
    expect(allow.describeCounts()).toMatch(/^1× caller pentest@contoso\.com/);

    // Disallowing is honoured by the next run's allowlist, and both changes are audited.
    await removeAllowRule(store, parseAllowValue('range', ['41.58.99.0/24']), {
      ...who,
      reason: 'exercise over',
    });
    const next = await provider.forRun(store);
    expect(next.suppress(finding({ operation: 'Microsoft.Compute/virtualMachines/write' }))).toBeUndefined();
    expect((await readAllowTable(store)).map((r) => r.kind)).toEqual(['caller', 'operation+city']);
    expect((await readAudit(store)).map((a) => [a.action, a.subject, a.reason])).toEqual([
      ['allow', `operation+city ${LISTKEYS.toLowerCase()} g:2332459`, 'red team exercise'],
      ['allow', 'caller pentest@contoso.com', 'red team exercise'],
      ['allow', 'range 41.58.99.0/24', 'red team exercise'],
      ['disallow', 'range 41.58.99.0/24', 'exercise over'],
    ]);
    await store.close();
  });
});

describe('allow rules at the grain of a caller', () => {
  it('(caller, city) and (caller, network) allow that caller only, until the rule expires', async () => {
    expect(parseAllowValue('caller+city', ['Ann@Contoso.com', '2332459'])).toEqual({
      kind: 'caller+city',
      value: 'ann@contoso.com g:2332459',
    });
    expect(parseAllowValue('caller+network', ['ann@contoso.com', 'as8075'])).toEqual({
      kind: 'caller+network',
      value: 'ann@contoso.com AS8075',
    });
    expect(() => parseAllowValue('caller+network', ['ann@contoso.com', 'Microsoft'])).toThrow(
      /not an autonomous system number/,
    );
    expect(() => parseAllowValue('caller+city', ['ann@contoso.com'])).toThrow(/two values: <caller> <city>/);

    const store = SqliteStore.open(':memory:');
    const change = { by: 'soc@contoso.com', reason: 'incident 42: travel', atMs: T0 };
    await addAllowRule(
      store,
      { ...parseAllowValue('caller+city', ['ann@contoso.com', '2332459']), expiresMs: T0 + DAY },
      change,
    );
    await addAllowRule(store, parseAllowValue('caller+network', ['bob@contoso.com', 'AS8075']), change);
    const allow = await (await AllowlistProvider.fromSettings(loadSettings({}))).forRun(store);
    const at = (f: RareFinding, hourMs: number): RareFinding => ({
      ...f,
      observation: { ...f.observation, hourMs },
    });
    const ann = finding({ caller: 'ann@contoso.com' });
    expect(allow.suppress(ann)).toMatch(
      /^caller\+city ann@contoso\.com g:2332459 \(allow table: soc@contoso\.com, .*, until /,
    );
    expect(allow.suppress(at(ann, T0 + DAY))).toBeUndefined(); // expired
    expect(allow.suppress(finding({ caller: 'eve@contoso.com' }))).toBeUndefined(); // another caller
    expect(
      allow.suppress(finding({ caller: 'ann@contoso.com', city: { ...LAGOS, key: 'g:1' } })),
    ).toBeUndefined();

    const bob = finding({ caller: 'bob@contoso.com' });
    const via = (...asns: number[]): RareFinding => ({
      ...bob,
      activity: { ...bob.activity, networks: asns.map((asn) => ({ asn, org: '' })) },
    });
    expect(allow.suppress(bob)).toBeUndefined(); // network unknown
    expect(allow.suppress(via(8075))).toMatch(/^caller\+network bob@contoso\.com AS8075/);
    expect(allow.suppress(via(8075, 37148))).toBeUndefined(); // not every network is allowed
    const expires = (detail: string | undefined) =>
      (JSON.parse(detail ?? '{}') as { expires?: string }).expires;
    expect((await readAudit(store)).map((a) => [a.subject, expires(a.detail)])).toEqual([
      ['caller+city ann@contoso.com g:2332459', new Date(T0 + DAY).toISOString()],
      ['caller+network bob@contoso.com AS8075', undefined],
    ]);
    await store.close();
  });
});

describe('allow rules for a (city, network): a carrier hub an analyst confirmed benign', () => {
  it('allow a caller of that country through that network, never a stranger, a confirmed compromise or another network', async () => {
    expect(parseAllowValue('city+network', ['2332459', 'as45609'])).toEqual({
      kind: 'city+network',
      value: 'g:2332459 AS45609',
    });
    expect(() => parseAllowValue('city+network', ['2332459'])).toThrow(/two values: <city> <AS number/);
    expect(() => parseAllowValue('city+network', ['Lagos', 'AS45609'])).toThrow(/is not a city/);

    const store = SqliteStore.open(':memory:');
    const change = { by: 'soc@contoso.com', reason: 'incident 7: BenignPositive', atMs: T0 };
    await addAllowRule(
      store,
      { ...parseAllowValue('city+network', ['2332459', 'AS45609']), expiresMs: T0 + DAY },
      change,
    );
    const allow = await (await AllowlistProvider.fromSettings(loadSettings({}))).forRun(store);
    const via = (o: { countries?: string[]; confirmed?: boolean; asns?: number[]; hourMs?: number }) => {
      const f = finding({ caller: 'ann@contoso.com' });
      return {
        ...f,
        observation: { ...f.observation, hourMs: o.hourMs ?? T0 },
        activity: { ...f.activity, networks: (o.asns ?? [45609]).map((asn) => ({ asn, org: '' })) },
        rarity: {
          score: 90,
          quarantinedForCaller: o.confirmed ?? false,
          ...(o.confirmed ? { confirmedForCaller: true } : {}),
          ...(o.countries ? { callerCountries: o.countries } : {}),
        } as RarityScore,
      };
    };
    expect(allow.suppress(via({ countries: ['GB', 'NG'] }))).toMatch(
      /^city\+network g:2332459 AS45609 \(allow table: soc@contoso\.com, /,
    );
    expect(allow.suppress(via({ countries: ['GB'] }))).toBeUndefined(); // never worked from Nigeria
    expect(allow.suppress(via({}))).toBeUndefined(); // countries unknown
    expect(allow.suppress(via({ countries: ['NG'], confirmed: true }))).toBeUndefined(); // TruePositive there
    expect(allow.suppress(via({ countries: ['NG'], asns: [45609, 37148] }))).toBeUndefined();
    expect(allow.suppress(via({ countries: ['NG'], asns: [] }))).toBeUndefined(); // network unknown
    expect(allow.suppress(via({ countries: ['NG'], hourMs: T0 + DAY }))).toBeUndefined(); // expired
    await store.close();
  });

  it("a rule that names the network's organisation also allows the organisation's other AS numbers there", async () => {
    const store = SqliteStore.open(':memory:');
    const change = { by: 'soc@contoso.com', reason: 'incident 8: BenignPositive', atMs: T0 };
    const rule = {
      ...parseAllowValue('city+network', ['2332459', 'AS45609']),
      org: ' Bharti Airtel Limited ',
    };
    await addAllowRule(store, rule, change);
    expect(await readAllowTable(store)).toEqual([
      expect.objectContaining({
        kind: 'city+network',
        value: 'g:2332459 AS45609',
        org: 'Bharti Airtel Limited',
      }),
    ]);
    expect(JSON.parse((await readAudit(store))[0]!.detail ?? '{}')).toMatchObject({
      org: 'Bharti Airtel Limited',
    });
    const allow = await (await AllowlistProvider.fromSettings(loadSettings({}))).forRun(store);
    const via = (networks: { asn: number; org: string }[], city: City = LAGOS): RareFinding => {
      const f = finding({ caller: 'ann@contoso.com', city });
      return {
        ...f,
        activity: { ...f.activity, networks },
        rarity: { score: 90, quarantinedForCaller: false, callerCountries: ['NG'] } as RarityScore,
      };
    };
    expect(allow.suppress(via([{ asn: 24560, org: 'BHARTI AIRTEL LIMITED' }]))).toMatch(
      /^city\+network g:2332459 AS45609 \(Bharti Airtel Limited\) \(allow table: /,
    );
    expect(allow.suppress(via([{ asn: 24560, org: '' }]))).toBeUndefined(); // organisation unknown
    expect(allow.suppress(via([{ asn: 9009, org: 'M247 Europe SRL' }]))).toBeUndefined();
    expect(
      allow.suppress(via([{ asn: 24560, org: 'Bharti Airtel Limited' }], { ...LAGOS, key: 'g:1' })),
    ).toBeUndefined();
    await store.close();
  });
});

describe('allowlists in runs', () => {
  const attack = () => [
    ...history(10),
    ev(T0 + 10 * DAY + 3 * 3_600_000 + 10 * MIN, LISTKEYS, 'admin@contoso.com', IP.lagos),
  ];

  it('a service tag keeps the Lagos finding from alerting; it is counted as allowlisted and still learned', async () => {
    const events = attack();
    const plain = await replayEvents(events);
    expect(plain.sink.alerts.map((a) => a.SrcGeoCity)).toEqual(['New York', 'Lagos']);
    expect(plain.summary.allowlisted).toBe(0);

    const overrides = { UC_SERVICE_TAGS_FILE: TAGS, UC_ALLOW_SERVICE_TAGS: 'AzureCloud.southafricanorth' };
    const allow = await (await AllowlistProvider.fromSettings(loadSettings({}, overrides))).forRun();
    const store = SqliteStore.open(':memory:');
    const sink = new MemoryAlertSink();
    const settings = loadSettings({}, overrides);
    const summary = await replayInto(store, events, { settings, sink, suppress: allow.suppress });
    expect(sink.alerts.map((a) => a.SrcGeoCity)).toEqual(['New York']);
    expect(summary.allowlisted).toBeGreaterThanOrEqual(1);
    expect(allow.describeCounts()).toMatch(
      /× service tag AzureCloud\.southafricanorth \(UC_ALLOW_SERVICE_TAGS\)$/,
    );
    // Allowlists decide what alerts, never what is learned.
    expect(await dump(store)).toEqual(await dump(plain.store));
    await Promise.all([store.close(), plain.store.close()]);
  });
});
