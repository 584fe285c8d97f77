import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { formatDuration, parseDuration } from '../../shared/config/duration.js';
import {
  defaultSettingValues,
  loadSettings,
  SETTING_NAMES,
  SettingsError,
} from '../../shared/config/settings.js';
import catalog from '../../shared/config/settings.json' with { type: 'json' };

const settingsPage = readFileSync(new URL('../../docs/settings.md', import.meta.url), 'utf8');
const sample = JSON.parse(
  readFileSync(new URL('../../local.settings.sample.json', import.meta.url), 'utf8'),
) as {
  Values: Record<string, string>;
};

function errorOf(fn: () => unknown): SettingsError {
  try {
    fn();
  } catch (e) {
    if (e instanceof SettingsError) return e;
    throw e;
  }
  throw new Error('expected a SettingsError');
}

describe('settings: one source of truth', () => {
  it('the catalogue (settings.json) and the typed schema list the same settings', () => {
    expect(catalog.settings.map((s) => s.name).sort()).toEqual([...SETTING_NAMES].sort());
    expect(new Set(catalog.settings.map((s) => s.name)).size).toBe(catalog.settings.length);
  });

  it('every default in the catalogue is valid', () => {
    expect(() => loadSettings({})).not.toThrow();
    expect(loadSettings({}).UC_ALERT_THRESHOLD).toBe(50);
    expect(loadSettings({}).UC_TICK_INTERVAL).toBe(15 * 60_000);
    expect(loadSettings({}).UC_LOOKBACK).toBe(2 * 3_600_000);
    expect(loadSettings({}).UC_ALERT_SEVERITY).toBe('Low');
    expect(loadSettings({}).UC_ALERT_RISK_SCORE).toBe(21);
  });

  it('local.settings.sample.json holds every setting with its default (Azurite for local storage)', () => {
    const localOverrides: Record<string, string> = {
      UC_STORAGE_CONNECTION_STRING: 'UseDevelopmentStorage=true',
    };
    for (const s of catalog.settings)
      expect(sample.Values[s.name], s.name).toBe(localOverrides[s.name] ?? s.default);
    const ucNames = Object.keys(sample.Values).filter((n) => n.startsWith('UC_'));
    expect(ucNames.sort()).toEqual([...SETTING_NAMES].sort());
  });

  it('the docs/settings.md table lists every setting with its default', () => {
    for (const s of catalog.settings) {
      const row = settingsPage.split('\n').find((l) => l.startsWith(`| \`${s.name}\``));
      expect(row, `docs/settings.md row for ${s.name}`).toBeDefined();
      expect(row).toContain(s.default === '' ? '(empty)' : `\`${s.default}\``);
    }
  });

  it('every description is written for a human', () => {
    for (const s of catalog.settings) expect(s.description.length, s.name).toBeGreaterThan(20);
  });
});

describe('settings: validation', () => {
  it('a bad value names the setting, the value and what is allowed', () => {
    const e = errorOf(() => loadSettings({ UC_ALERT_THRESHOLD: 'abc' }));
    expect(e.message).toBe('Invalid app setting UC_ALERT_THRESHOLD="abc": expected a number from 0 to 100.');
    expect(errorOf(() => loadSettings({ UC_ALERT_SEVERITY: 'Critical' })).message).toContain(
      'expected one of Informational, Low, Medium, High',
    );
    expect(errorOf(() => loadSettings({ UC_TICK_INTERVAL: '15 minutes' })).message).toContain(
      'UC_TICK_INTERVAL="15 minutes": expected a duration such as 30s, 15m, 2h or 1d',
    );
    expect(errorOf(() => loadSettings({ UC_ESTABLISH_DAYS: '2.5' })).message).toContain(
      'an integer from 1 to 3650',
    );
    expect(errorOf(() => loadSettings({ UC_ALERTS_TABLE: 'Alerts' })).message).toContain('ending in _CL');
  });

  it('reports every bad setting at once', () => {
    const e = errorOf(() => loadSettings({ UC_ALERT_THRESHOLD: '101', UC_NO_CITY_MODE: 'city' }));
    expect(e.problems.map((p) => p.name).sort()).toEqual(['UC_ALERT_THRESHOLD', 'UC_NO_CITY_MODE']);
  });

  it('rejects unknown names given with --set, so typos do not pass silently', () => {
    const e = errorOf(() => loadSettings({}, { UC_ALERT_TRESHOLD: '60' }));
    expect(e.message).toContain('UC_ALERT_TRESHOLD');
    expect(e.message).toContain('a known setting name');
  });

  it('rejects a lookback shorter than the tick (windows would leave gaps)', () => {
    const e = errorOf(() => loadSettings({ UC_TICK_INTERVAL: '1h', UC_LOOKBACK: '30m' }));
    expect(e.message).toContain('UC_LOOKBACK="30m"');
    expect(e.message).toContain('at least UC_TICK_INTERVAL');
  });

  it('an invalid UC_EGRESS_RANGES stops start-up naming the setting', () => {
    const e = errorOf(() => loadSettings({ UC_EGRESS_RANGES: 'Corp=10.0.0.0/33' }));
    expect(e.message).toContain('UC_EGRESS_RANGES');
    expect(e.message).toContain('10.0.0.0/33');
  });

  it('overrides win over the environment; empty values take the default', () => {
    const s = loadSettings({ UC_ALERT_THRESHOLD: '70', UC_TOP_CITIES: '' }, { UC_ALERT_THRESHOLD: '60' });
    expect(s.UC_ALERT_THRESHOLD).toBe(60);
    expect(s.UC_TOP_CITIES).toBe(5);
    expect(s.UC_CATEGORIES).toEqual([]);
    expect(loadSettings({ UC_CATEGORIES: 'Administrative, Security' }).UC_CATEGORIES).toEqual([
      'Administrative',
      'Security',
    ]);
  });

  it('defaultSettingValues mirrors the catalogue', () => {
    expect(defaultSettingValues().UC_ALERT_NAME).toBe('Unusual City for an Azure Activity Logs Event');
  });
});

describe('settings for the Azure runtime', () => {
  it('never echoes a secret in an error', () => {
    const e = errorOf(() => loadSettings({ UC_MAXMIND_LICENSE_KEY: 'bad key with spaces' }));
    expect(e.message).toContain('UC_MAXMIND_LICENSE_KEY=(secret, not shown)');
    expect(e.message).not.toContain('bad key');
  });

  it('accepts a connection string only for local development', () => {
    expect(
      loadSettings({ UC_STORAGE_CONNECTION_STRING: 'UseDevelopmentStorage=true' })
        .UC_STORAGE_CONNECTION_STRING,
    ).toBe('UseDevelopmentStorage=true');
    const e = errorOf(() =>
      loadSettings({
        UC_STORAGE_CONNECTION_STRING:
          'DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k;TableEndpoint=https://a.table.core.windows.net',
      }),
    );
    expect(e.message).toContain('UC_STORAGE_CONNECTION_STRING');
    expect(e.message).toContain('local development only');
  });

  it('validates ids, endpoints and schedules', () => {
    expect(errorOf(() => loadSettings({ UC_WORKSPACE_ID: 'my-workspace' })).message).toContain(
      'a workspace id (GUID)',
    );
    expect(
      errorOf(() => loadSettings({ UC_LOGS_ENDPOINT: 'http://api.loganalytics.io/v1' })).message,
    ).toContain('an https URL');
    expect(errorOf(() => loadSettings({ UC_SCHEDULE: '*/15 * * * *' })).message).toContain(
      'six-field NCRONTAB',
    );
    expect(errorOf(() => loadSettings({ UC_DCR_IMMUTABLE_ID: 'abc' })).message).toContain('dcr-');
    expect(errorOf(() => loadSettings({ UC_CATEGORIES: "Administrative' or 1==1" })).message).toContain(
      'letters only',
    );
    const ok = loadSettings({
      UC_WORKSPACE_ID: '0b0e2f5c-5c1e-4a57-9d4e-2f5b4c9e1a11',
      UC_ADDITIONAL_WORKSPACE_IDS:
        '1b0e2f5c-5c1e-4a57-9d4e-2f5b4c9e1a11, 2b0e2f5c-5c1e-4a57-9d4e-2f5b4c9e1a11',
      UC_LOGS_ENDPOINT: 'https://api.loganalytics.azure.cn/v1/',
      UC_DCR_IMMUTABLE_ID: 'dcr-0123456789abcdef0123456789abcdef',
    });
    expect(ok.UC_LOGS_ENDPOINT).toBe('https://api.loganalytics.azure.cn/v1');
    expect(ok.UC_ADDITIONAL_WORKSPACE_IDS).toHaveLength(2);
    expect(ok.UC_TELEMETRY_INCLUDE_IDENTITIES).toBe(false);
  });
});

describe('durations', () => {
  it.each([
    ['15m', 900_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['500ms', 500],
    ['30s', 30_000],
  ])('%s = %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
    expect(parseDuration(formatDuration(ms))).toBe(ms);
  });
  it.each(['', '15', 'm', '15 m', '1x', '-5m'])('rejects %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('Key Vault references', () => {
  it('an unresolved reference to a secret counts as empty instead of stopping every function', () => {
    const s = loadSettings({
      UC_MAXMIND_LICENSE_KEY:
        '@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/maxmind-licence-key/)',
    });
    expect(s.UC_MAXMIND_LICENSE_KEY).toBe('');
  });
});
