import { z } from 'zod';

import { parseEgressRanges } from '../geo/egress.js';
import { parseDuration } from './duration.js';
import catalog from './settings.json' with { type: 'json' };

/** One entry of the settings catalogue (shared/config/settings.json). */
export interface SettingSpec {
  name: string;
  default: string;
  group: string;
  description: string;
}

export const SETTING_SPECS: readonly SettingSpec[] = catalog.settings;

const duration = (min: number, what: string) =>
  z.string().transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined || ms < min) {
      ctx.addIssue({ code: 'custom', message: `a duration such as 30s, 15m, 2h or 1d${what}` });
      return z.NEVER;
    }
    return ms;
  });

const number = (min: number, max: number, integer = false) =>
  z.string().transform((text, ctx) => {
    const n = Number(text.trim());
    if (
      text.trim() === '' ||
      !Number.isFinite(n) ||
      n < min ||
      n > max ||
      (integer && !Number.isInteger(n))
    ) {
      ctx.addIssue({
        code: 'custom',
        message: `${integer ? 'an integer' : 'a number'} from ${min} to ${max}`,
      });
      return z.NEVER;
    }
    return n;
  });

const oneOf = <T extends string>(values: readonly T[]) =>
  z.string().transform((text, ctx) => {
    const found = values.find((v) => v.toLowerCase() === text.trim().toLowerCase());
    if (found === undefined) {
      ctx.addIssue({ code: 'custom', message: `one of ${values.join(', ')}` });
      return z.NEVER;
    }
    return found;
  });

const list = z.string().transform((text) =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== ''),
);

const text = (pattern: RegExp, allowed: string) =>
  z.string().transform((value, ctx) => {
    if (!pattern.test(value)) {
      ctx.addIssue({ code: 'custom', message: allowed });
      return z.NEVER;
    }
    return value;
  });

const schema = z.object({
  UC_TICK_INTERVAL: duration(1_000, ' (at least 1s)'),
  UC_LOOKBACK: duration(1_000, ' (at least 1s)'),
  UC_GEOIP_DB_PATH: z.string().transform((s) => s.trim()),
  UC_NO_CITY_MODE: oneOf(['skip', 'country'] as const),
  UC_EGRESS_RANGES: z.string().superRefine((text, ctx) => {
    try {
      parseEgressRanges(text);
    } catch (e) {
      ctx.addIssue({
        code: 'custom',
        message: e instanceof Error ? e.message.replace(/^UC_EGRESS_RANGES: /, '') : String(e),
      });
    }
  }),
  UC_EGRESS_SCORE_CAP: number(0, 100),
  UC_ALERT_THRESHOLD: number(0, 100),
  UC_HALF_LIFE_DAYS: number(0.01, 3650),
  UC_PRIOR_WEIGHT: number(0, 1),
  UC_SMOOTHING_ALPHA: number(0, 1000),
  UC_MERGE_KM: number(0, 20_000),
  UC_DISTANCE_SCALE_KM: number(1, 20_000),
  UC_NEAR_FACTOR: number(1, 1000),
  UC_NEW_COUNTRY_OPERATION_BOOST: number(1, 1000),
  UC_NEW_COUNTRY_TENANT_BOOST: number(1, 1000),
  UC_LEARNING_OPERATION_HOURS: number(0, 100_000),
  UC_LEARNING_TENANT_DAYS: number(0, 3650),
  UC_ESTABLISH_HOURS: number(1, 100_000, true),
  UC_ESTABLISH_DAYS: number(1, 3650, true),
  UC_ESTABLISH_CALLERS: number(1, 1000, true),
  UC_UNESTABLISHED_WEIGHT: number(0, 1),
  UC_NEW_CITY_FOR_CALLER_BOOST: number(1, 1000),
  UC_FAMILIAR_SCORE_CAP: number(0, 100),
  UC_CALLER_LEARNING_HOURS: number(0, 100_000),
  UC_ALERT_COOLDOWN: duration(0, ''),
  UC_RESCORE_MARGIN: number(0, 100),
  UC_DAILY_ALERT_CAP: number(1, 1_000_000, true),
  UC_ALERT_NAME: text(/^[^\r\n]{1,256}$/, 'one line of 1 to 256 characters'),
  UC_ALERT_SEVERITY: oneOf(['Informational', 'Low', 'Medium', 'High'] as const),
  UC_ALERT_RISK_SCORE: number(0, 100, true),
  UC_ALERTS_TABLE: text(
    /^[A-Za-z][A-Za-z0-9_]{0,59}_CL$/,
    'a custom table name: letters, digits, _ ending in _CL',
  ),
  UC_TOP_CITIES: number(1, 50, true),
  UC_MAX_CALLERS_PER_CITY: number(1, 100, true),
  UC_TABLE_PREFIX: text(
    /^[A-Za-z][A-Za-z0-9]{2,50}$/,
    'letters and digits starting with a letter, 3 to 51 characters',
  ),
  UC_CATEGORIES: list,
  UC_STATUSES: list,
});

export type Settings = z.output<typeof schema>;
export type SettingName = keyof Settings;
export const SETTING_NAMES = Object.keys(schema.shape) as SettingName[];

/** A bad setting stops start-up: the message names the setting, the value and what is allowed. */
export class SettingsError extends Error {
  constructor(readonly problems: { name: string; value: string; allowed: string }[]) {
    super(
      problems
        .map((p) => `Invalid app setting ${p.name}=${JSON.stringify(p.value)}: expected ${p.allowed}.`)
        .join('\n'),
    );
    this.name = 'SettingsError';
  }
}

/** Defaults of every setting, as text (what local.settings.sample.json holds). */
export function defaultSettingValues(): Record<SettingName, string> {
  return Object.fromEntries(SETTING_SPECS.map((s) => [s.name, s.default])) as Record<SettingName, string>;
}

/**
 * Reads settings from an environment-like map (process.env in Functions, plus `--set` overrides in the CLI).
 * Unset or empty-string values take the default; unknown UC_* names are rejected so typos do not go unnoticed.
 */
export function loadSettings(
  env: Readonly<Record<string, string | undefined>>,
  overrides: Readonly<Record<string, string>> = {},
): Settings {
  const problems: { name: string; value: string; allowed: string }[] = [];
  for (const name of Object.keys(overrides)) {
    if (!(SETTING_NAMES as string[]).includes(name)) {
      problems.push({
        name,
        value: overrides[name] ?? '',
        allowed: `a known setting name (${SETTING_NAMES.join(', ')})`,
      });
    }
  }
  const raw: Record<string, string> = {};
  for (const spec of SETTING_SPECS) {
    const given = overrides[spec.name] ?? env[spec.name];
    raw[spec.name] = given === undefined || given.trim() === '' ? spec.default : given;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0]);
      problems.push({ name, value: raw[name] ?? '', allowed: issue.message });
    }
  }
  if (problems.length > 0 || !parsed.success) throw new SettingsError(problems);
  const settings = parsed.data;
  if (settings.UC_LOOKBACK < settings.UC_TICK_INTERVAL) {
    throw new SettingsError([
      {
        name: 'UC_LOOKBACK',
        value: raw.UC_LOOKBACK ?? '',
        allowed: `a duration at least UC_TICK_INTERVAL (${raw.UC_TICK_INTERVAL}), or windows would leave gaps`,
      },
    ]);
  }
  return settings;
}
