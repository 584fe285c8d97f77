/**
 * `baseline allow` at the grain of a caller: (caller, city), (caller, network) and (operation, city) rules with
 * an expiry (--for, --expires), cities given by name and resolved against the tenant's baseline (ambiguous and
 * unknown names list the candidates with their geoname ids), `baseline allows` marking expired rules — in
 * process and through the built CLI, whose rule then keeps one caller's finding from alerting, not another's.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { writeJsonLines } from '../../shared/activity/formats.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import { UsageError } from '../../shared/cli/args.js';
import { expiryOf, runBaselineCommand } from '../../shared/cli/baseline.js';
import { readAllowTable } from '../../shared/ops/allowlist.js';
import { readAudit } from '../../shared/ops/audit.js';
import { CityNameError, knownCities, type KnownCity, resolveCityName } from '../../shared/ops/baseline.js';
import { DAY, DEPLOY, history, HOUR, LISTKEYS, MIN, T0 } from '../ops/helpers.js';
import { killRunningClis, spawnCli } from '../support/builtCli.js';
import { ev } from '../support/events.js';

/** Addresses the embedded 2019 GeoLite2-City database places in Paris, France and Paris, Kentucky. */
const PARIS_FR = { ip: '5.48.99.10', id: 2988507 };
const PARIS_US = { ip: '76.177.99.10', id: 4303602 };

const CITIES: KnownCity[] = [
  { key: 'g:2643743', name: 'London', country: 'GB' },
  { key: 'g:6058560', name: 'London', country: 'CA' },
  { key: 'g:2657896', name: 'Zürich', country: 'CH' },
  { key: 'g:5128581', name: 'New York', country: 'US' },
  { key: 'g:4152574', name: 'Springfield', country: 'US' },
  { key: 'g:4250542', name: 'Springfield', country: 'US' },
  { key: 'e:CorpVPN', name: 'CorpVPN', country: '' },
];

describe('a city by name', () => {
  it('resolves a name unique among the known cities, without case or accents', () => {
    expect(resolveCityName(CITIES, 'new york')).toBe('g:5128581');
    expect(resolveCityName(CITIES, 'Zurich')).toBe('g:2657896');
    expect(resolveCityName(CITIES, '  New   York ')).toBe('g:5128581');
    expect(resolveCityName(CITIES, 'CorpVPN')).toBe('e:CorpVPN');
  });

  it('chooses by country: "London, CA" and "London,GB"', () => {
    expect(resolveCityName(CITIES, 'London, CA')).toBe('g:6058560');
    expect(resolveCityName(CITIES, 'London,gb')).toBe('g:2643743');
  });

  it('an ambiguous name lists every candidate with its geoname id', () => {
    expect(() => resolveCityName(CITIES, 'London')).toThrow(CityNameError);
    expect(() => resolveCityName(CITIES, 'London')).toThrow(
      '"London" is ambiguous: London, GB (2643743); London, CA (6058560) — give the geoname id or add the country ("London, GB")',
    );
    // Same name, same country: only the id tells them apart.
    expect(() => resolveCityName(CITIES, 'Springfield, US')).toThrow(
      '"Springfield, US" is ambiguous: Springfield, US (4152574); Springfield, US (4250542) — give the geoname id',
    );
  });

  it('an unknown name says so, with the similar names the baseline knows', () => {
    expect(() => resolveCityName(CITIES, 'London, FR')).toThrow(
      'no city named "London, FR" among the 7 cities this baseline knows; did you mean London, GB (2643743); London, CA (6058560)?',
    );
    expect(() => resolveCityName(CITIES, 'York')).toThrow('did you mean New York, US (5128581)?');
    expect(() => resolveCityName(CITIES, 'Paris')).toThrow(
      'no city named "Paris" among the 7 cities this baseline knows: give its MaxMind geoname id',
    );
    expect(() => resolveCityName([], 'Paris')).toThrow('among the 0 cities');
  });
});

describe('an expiry', () => {
  const now = Date.UTC(2026, 11, 7, 22, 0);
  it('--for a duration from now, --expires a date (00:00 UTC) or an ISO time with a zone', () => {
    expect(expiryOf({}, now)).toBeUndefined();
    expect(expiryOf({ for: '30d' }, now)).toBe(now + 30 * DAY);
    expect(expiryOf({ for: '1d12h' }, now)).toBe(now + 36 * HOUR);
    expect(expiryOf({ expires: '2027-01-31' }, now)).toBe(Date.UTC(2027, 0, 31));
    expect(expiryOf({ expires: '2027-01-31T18:00+01:00' }, now)).toBe(Date.UTC(2027, 0, 31, 17));
  });
  it('refuses what cannot be meant: both, no unit, an impossible or local date, the past', () => {
    const refused = (o: { for?: string; expires?: string }) => {
      try {
        expiryOf(o, now);
      } catch (error) {
        expect(error).toBeInstanceOf(UsageError);
        return (error as Error).message;
      }
      return 'accepted';
    };
    expect(refused({ for: '30d', expires: '2027-01-31' })).toBe(
      'baseline allow: give --for or --expires, not both',
    );
    expect(refused({ for: '30' })).toMatch(/--for expects a duration such as 12h, 30d/);
    expect(refused({ for: '0d' })).toMatch(/--for expects a duration/);
    expect(refused({ expires: '2027-02-30' })).toMatch(/--expires expects a date \(2027-01-31, 00:00 UTC\)/);
    expect(refused({ expires: '2027-01-31T18:00' })).toMatch(/--expires expects a date/);
    expect(refused({ expires: '31/01/2027' })).toMatch(/--expires expects a date/);
    expect(refused({ expires: '2026-12-07' })).toBe(
      'baseline allow: --expires 2026-12-07 is not in the future (now 2026-12-07T22:00:00.000Z)',
    );
  });
});

let tmp = '';
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'uc-grain-'));
});
afterAll(async () => {
  killRunningClis();
  await rm(tmp, { recursive: true, force: true });
});

describe('baseline allow and allows, in process', () => {
  it('stores the expiry, shows it, and marks a rule expired once its time has passed', async () => {
    const dir = await mkdtemp(join(tmp, 'state-'));
    let now = Date.UTC(2026, 11, 7, 12);
    const run = async (args: string[]) => {
      let stdout = '';
      let stderr = '';
      const code = await runBaselineCommand([...args, '--state', dir], {
        env: {},
        stdout: (s) => (stdout += s),
        stderr: (s) => (stderr += s),
        clock: () => now,
      });
      return { code, stdout, stderr };
    };
    const who = ['--by', 'alice', '--reason', 'commutes'];
    const a = await run(['allow', 'caller+city', 'Ann@Contoso.com', '2988507', '--for', '2d', ...who]);
    expect(a).toEqual({
      code: 0,
      stdout:
        'allowed: caller+city ann@contoso.com g:2988507 until 2026-12-09T12:00:00.000Z (2d); honoured from the next run\n',
      stderr: '',
    });
    const b = await run([
      'allow',
      'caller+network',
      'ann@contoso.com',
      'as3215',
      '--expires',
      '2027-01-31',
      ...who,
    ]);
    expect(b.stdout).toBe(
      'allowed: caller+network ann@contoso.com AS3215 until 2027-01-31T00:00:00.000Z; honoured from the next run\n',
    );
    expect((await run(['allow', 'caller', 'ci@contoso.com', ...who])).code).toBe(0);
    await expect(run(['disallow', 'caller', 'ci@contoso.com', '--for', '1d', ...who])).rejects.toThrow(
      '--for and --expires are options of baseline allow, not of baseline disallow',
    );

    now += 3 * DAY; // the (caller, city) rule has expired, the (caller, network) one has not
    const allows = await run(['allows']);
    expect(allows.stdout).toBe(
      [
        'from settings (0):',
        'allow table (3):',
        '  [expired] caller+city ann@contoso.com g:2988507 (allow table: alice, 2026-12-07, until 2026-12-09T12:00Z: "commutes")',
        '  caller+network ann@contoso.com AS3215 (allow table: alice, 2026-12-07, until 2027-01-31T00:00Z: "commutes")',
        '  caller ci@contoso.com (allow table: alice, 2026-12-07: "commutes")',
        '',
      ].join('\n'),
    );
    const json = JSON.parse((await run(['allows', '--json'])).stdout) as {
      table: { kind: string; expires: string | null; expired: boolean }[];
    };
    expect(json.table.map((r) => [r.kind, r.expires, r.expired])).toEqual([
      ['caller+city', '2026-12-09T12:00:00.000Z', true],
      ['caller+network', '2027-01-31T00:00:00.000Z', false],
      ['caller', null, false],
    ]);
    // Re-allowing renews the expiry.
    expect(
      (await run(['allow', 'caller+city', 'ann@contoso.com', 'g:2988507', '--for', '30d', ...who])).stdout,
    ).toBe(
      'already allowed (who, why and expiry updated): caller+city ann@contoso.com g:2988507 until 2027-01-09T12:00:00.000Z (30d); honoured from the next run\n',
    );
    const store = SqliteStore.openDirectory(dir);
    try {
      expect((await readAllowTable(store)).find((r) => r.kind === 'caller+city')?.expiresMs).toBe(
        Date.UTC(2027, 0, 9, 12),
      );
      expect((await readAudit(store)).map((r) => [r.action, r.subject])).toEqual([
        ['allow', 'caller+city ann@contoso.com g:2988507'],
        ['allow', 'caller+network ann@contoso.com AS3215'],
        ['allow', 'caller ci@contoso.com'],
        ['allow', 'caller+city ann@contoso.com g:2988507'],
      ]);
    } finally {
      await store.close();
    }
  });
});

describe('the built CLI', () => {
  it('allows a caller from a city named as people name it; the rule silences that caller only', async () => {
    const dir = join(tmp, 'cli-state');
    const historyFile = join(tmp, 'history.jsonl');
    const presentFile = join(tmp, 'present.jsonl');
    // Ten days of the small tenant, plus a visitor in each Paris: the tenant knows both.
    const visits = [
      ev(T0 + 3 * DAY + 10 * HOUR, DEPLOY, 'visitor@contoso.com', PARIS_FR.ip),
      ev(T0 + 4 * DAY + 15 * HOUR, DEPLOY, 'visitor@contoso.com', PARIS_US.ip),
    ];
    await writeJsonLines(
      [...history(10), ...visits].sort((x, y) => x.timeMs - y.timeMs),
      historyFile,
    );
    // Day 10: the admin and a developer list keys from Paris, France.
    const at = T0 + 10 * DAY + 3 * HOUR;
    await writeJsonLines(
      [
        ev(at + 10 * MIN, LISTKEYS, 'admin@contoso.com', PARIS_FR.ip),
        ev(at + 12 * MIN, LISTKEYS, 'dev1@contoso.com', PARIS_FR.ip),
      ],
      presentFile,
    );
    const cli = async (args: string[]) => await spawnCli(args, { cwd: tmp, timeoutMs: 60_000 }).result;
    const who = ['--by', 'alice', '--reason', 'admin works from Paris', '--state', dir];
    const boot = await cli([
      'bootstrap',
      '--from-files',
      historyFile,
      '--state',
      dir,
      '--by',
      'ci',
      '--reason',
      't',
    ]);
    expect(boot.code, boot.stderr).toBe(0);

    const ambiguous = await cli(['baseline', 'allow', 'caller+city', 'admin@contoso.com', 'Paris', ...who]);
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toBe(
      `baseline allow: "Paris" is ambiguous: Paris, FR (${PARIS_FR.id}); Paris, US (${PARIS_US.id}) — give the geoname id or add the country ("Paris, FR")\n`,
    );
    const unknown = await cli(['baseline', 'allow', 'operation+city', LISTKEYS, 'Pari', ...who]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(
      /^baseline allow: no city named "Pari" among the \d+ cities this baseline knows; did you mean Paris, FR \(2988507\); Paris, US \(4303602\)\?\n$/,
    );
    // The name given as two words of the shell (Paris, FR unquoted) is one city.
    const allowed = await cli([
      'baseline',
      'allow',
      'caller+city',
      'admin@contoso.com',
      'Paris,',
      'FR',
      '--for',
      '30d',
      ...who,
    ]);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stdout).toMatch(
      /^allowed: caller\+city admin@contoso\.com g:2988507 \(Paris, FR\) until \d{4}-\d\d-\d\dT[\d:.]+Z \(30d\); honoured from the next run\n$/,
    );
    const network = await cli(['baseline', 'allow', 'caller+network', 'admin@contoso.com', 'AS3215', ...who]);
    expect(network.stdout).toBe(
      'allowed: caller+network admin@contoso.com AS3215; honoured from the next run\n',
    );
    const byCountry = await cli([
      'baseline',
      'allow',
      'operation+city',
      DEPLOY,
      'paris,us',
      '--expires',
      '2099-01-01',
      ...who,
    ]);
    expect(byCountry.stdout).toBe(
      `allowed: operation+city ${DEPLOY.toLowerCase()} g:${PARIS_US.id} (Paris, US) until 2099-01-01T00:00:00.000Z; honoured from the next run\n`,
    );
    const badExpiry = await cli([
      'baseline',
      'allow',
      'caller',
      'x@contoso.com',
      '--expires',
      'tomorrow',
      ...who,
    ]);
    expect(badExpiry.code).toBe(64);
    expect(badExpiry.stderr).toContain('--expires expects a date');

    const listed = await cli(['baseline', 'allows', '--state', dir]);
    expect(listed.stdout).toContain('\n  caller+city admin@contoso.com g:2988507 (allow table: alice, ');
    expect(listed.stdout).toMatch(
      /caller\+city admin@contoso\.com g:2988507 \(allow table: alice, [\d-]+, until [\dT:-]+Z: "admin works from Paris"\)/,
    );
    expect(listed.stdout).toContain(
      `operation+city ${DEPLOY.toLowerCase()} g:${PARIS_US.id} (allow table: alice, `,
    );
    expect(listed.stdout).not.toContain('[expired]');

    // The admin's listKeys from Paris is allowed; the developer's, from the same city in the same hour, alerts.
    const out = join(tmp, 'alerts.jsonl');
    const replayed = await cli(['replay', presentFile, '--state', dir, '--out', out, '--quiet']);
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(replayed.stderr).toMatch(
      /allowlist matches: 1× caller\+city admin@contoso\.com g:2988507 \(allow table: alice/,
    );
    const alerts = (await readFile(out, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { Caller: string; SrcGeoCity: string });
    expect(alerts.map((a) => [a.Caller, a.SrcGeoCity])).toEqual([['dev1@contoso.com', 'Paris']]);

    const store = SqliteStore.openDirectory(dir);
    try {
      const paris = (await knownCities(store)).filter((c) => c.name === 'Paris');
      expect(paris).toEqual([
        { key: `g:${PARIS_FR.id}`, name: 'Paris', country: 'FR' },
        { key: `g:${PARIS_US.id}`, name: 'Paris', country: 'US' },
      ]);
    } finally {
      await store.close();
    }
  }, 120_000);
});
