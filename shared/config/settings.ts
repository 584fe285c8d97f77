import { z } from 'zod';

// Upward import (config/ is the ground floor, geo/ stands on it): UC_EGRESS_RANGES and UC_ALLOW_RANGES are validated
// at start-up by the very parser the geolocator uses, so a value that starts is a value that works.
import { parseEgressRanges } from '../geo/egress.js';
import { parseDuration } from './duration.js';
import catalog from './settings.json' with { type: 'json' };

/** One entry of the settings catalogue (shared/config/settings.json). */
export interface SettingSpec {
  name: string;
  default: string;
  group: string;
  description: string;
  /** Never echoed in errors or logs (Key Vault references resolve to secrets at run time). */
  secret?: boolean;
}

export const SETTING_SPECS: readonly SettingSpec[] = catalog.settings;
const SECRET = new Set(SETTING_SPECS.filter((s) => s.secret === true).map((s) => s.name));

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

const listOf = (pattern: RegExp, allowed: string) =>
  list.superRefine((values, ctx) => {
    if (values.some((v) => !pattern.test(v))) ctx.addIssue({ code: 'custom', message: allowed });
  });

/**
 * A secret app setting. An unresolved Key Vault reference (the platform passes the literal
 * `@Microsoft.KeyVault(...)` text until the secret exists and the identity may read it) counts as empty, so only
 * the feature that needs the secret fails — with its own message — not every function of the app.
 */
const secret = (pattern: RegExp, allowed: string) =>
  z.string().transform((value, ctx) => {
    if (/^@Microsoft\.KeyVault\(.*\)$/i.test(value.trim())) return '';
    if (!pattern.test(value)) {
      ctx.addIssue({ code: 'custom', message: allowed });
      return z.NEVER;
    }
    return value;
  });

const text = (pattern: RegExp, allowed: string) =>
  z.string().transform((value, ctx) => {
    if (!pattern.test(value)) {
      ctx.addIssue({ code: 'custom', message: allowed });
      return z.NEVER;
    }
    return value;
  });

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Six-field NCRONTAB (seconds first), as Azure Functions timers take it. */
const ncrontab = text(
  /^\s*(\S+\s+){5}\S+\s*$/,
  'a six-field NCRONTAB expression such as 0 */15 * * * * (second minute hour day month weekday)',
);

const optionalUrl = (what: string) =>
  z.string().transform((value, ctx) => {
    const v = value.trim();
    if (v === '') return '';
    try {
      const u = new URL(v);
      if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopback(u.hostname)))
        throw new Error('scheme');
      return v.replace(/\/+$/, '');
    } catch {
      ctx.addIssue({
        code: 'custom',
        message: `an https URL of ${what} (http only for 127.0.0.1/localhost), or empty`,
      });
      return z.NEVER;
    }
  });

function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '[::1]';
}

/** A name segment of a resource id: what Azure allows in group and resource names (no / ? # % space, not . or ..). */
const ID_SEGMENT = String.raw`(?!\.{1,2}(?:/|$))[A-Za-z0-9._()-]{1,260}`;

/**
 * An ARM resource id of one type (`/subscriptions/<guid>/resourceGroups/<rg>/providers/<type>/<name>`; `<…>` in
 * the type stands for a parent's name), or empty. Strict, so the id can be put in a URL path as it is.
 */
const resourceId = (type: string) => {
  const typePattern = type
    .split(/(<[a-z]+>)/)
    .map((part) => (part.startsWith('<') ? ID_SEGMENT : part.replace(/\./g, '\\.')))
    .join('');
  const pattern = new RegExp(
    String.raw`^$|^/subscriptions/[0-9a-f-]{36}/resourceGroups/${ID_SEGMENT}/providers/${typePattern}/${ID_SEGMENT}$`,
    'i',
  );
  return text(
    pattern,
    `a resource id /subscriptions/<id>/resourceGroups/<group>/providers/${type}/<name>, or empty`,
  );
};

const bool = z.string().transform((value, ctx) => {
  const v = value.trim().toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  ctx.addIssue({ code: 'custom', message: 'true or false' });
  return z.NEVER;
});

const schema = z.object({
  UC_TICK_INTERVAL: duration(1_000, ' (at least 1s)'),
  UC_LOOKBACK: duration(1_000, ' (at least 1s)'),
  UC_GEOIP_DB_PATH: z.string().transform((s) => s.trim()),
  UC_ASN_DB_PATH: z.string().transform((s) => s.trim()),
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
  UC_NETWORKS: oneOf(['on', 'off'] as const),
  UC_MOVE_CALLERS: number(2, 1000, true),
  UC_MOVE_HOURS: number(1, 168, true),
  UC_MOVE_DAYS: number(0, 365, true),
  UC_MOVE_ALERT: oneOf(['on', 'off'] as const),
  UC_WAVE_CALLERS: number(2, 1000, true),
  UC_WAVE_HOURS: number(1, 168, true),
  UC_WAVE_SEVERITY: oneOf(['Informational', 'Low', 'Medium', 'High'] as const),
  UC_KNOWN_NETWORK_SCORE_CAP: number(0, 100),
  UC_NEW_NETWORK_BOOST: number(1, 1000),
  UC_NETWORK_KNOWN_DAYS: number(1, 365, true),
  UC_FAMILIAR_SCORE_CAP: number(0, 100),
  UC_CALLER_LEARNING_HOURS: number(0, 100_000),
  UC_CALLER_NOVELTY_WEIGHT: number(0, 2),
  UC_ABSENCE_WEIGHT: number(0, 2),
  UC_QUARANTINE_SCORE: number(0, 100),
  UC_QUARANTINE_DAYS: number(0, 3650),
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
  UC_CATEGORIES: list.superRefine((values, ctx) => {
    // The same rule as the query builder's (shared/source/logAnalytics.ts): these names reach KQL.
    if (values.length > 64 || values.some((v) => !/^[A-Za-z]{1,64}$/.test(v)))
      ctx.addIssue({
        code: 'custom',
        message:
          'at most 64 comma-separated category names (letters only, at most 64 each), e.g. Administrative,Security',
      });
  }),
  UC_STATUSES: list.superRefine((values, ctx) => {
    // The same rule as the query builder's (shared/source/logAnalytics.ts): these names reach KQL.
    if (values.length > 64 || values.some((v) => !/^[A-Za-z]{1,64}$/.test(v)))
      ctx.addIssue({
        code: 'custom',
        message:
          'at most 64 comma-separated status names (letters only, at most 64 each), e.g. Succeeded,Failed',
      });
  }),
  UC_SCHEDULE: ncrontab,
  UC_RUN_BUDGET: duration(10_000, ' (at least 10s)'),
  UC_WORKSPACE_ID: text(
    /^$|^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
    'a workspace id (GUID), or empty',
  ),
  UC_ADDITIONAL_WORKSPACE_IDS: list.superRefine((values, ctx) => {
    for (const v of values)
      if (!GUID.test(v)) ctx.addIssue({ code: 'custom', message: 'comma-separated workspace ids (GUIDs)' });
  }),
  UC_LOGS_ENDPOINT: optionalUrl('the Log Analytics query API including /v1'),
  UC_TABLE_ENDPOINT: optionalUrl('a Table service'),
  UC_STORAGE_CONNECTION_STRING: z.string().transform((value, ctx) => {
    const v = value.trim();
    if (v === '' || /^UseDevelopmentStorage=true$/i.test(v)) return v;
    const endpoints = [...v.matchAll(/(?:Table|Blob)Endpoint=([^;]+)/gi)].map((m) => m[1] ?? '');
    const local =
      endpoints.length > 0 &&
      endpoints.every((e) => {
        try {
          return isLoopback(new URL(e).hostname);
        } catch {
          return false;
        }
      });
    if (!local) {
      ctx.addIssue({
        code: 'custom',
        message:
          'UseDevelopmentStorage=true or a connection string whose endpoints are 127.0.0.1 (local development only; in Azure use UC_TABLE_ENDPOINT with managed identity)',
      });
      return z.NEVER;
    }
    return v;
  }),
  UC_BLOB_ENDPOINT: optionalUrl('a Blob service'),
  UC_GEOIP_BLOB: text(
    /^$|^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])\/[^\s]+$/,
    'container/blob (e.g. geoip/GeoLite2-City.mmdb), or empty',
  ),
  UC_GEOIP_EDITION: oneOf(['GeoLite2-City', 'GeoIP2-City'] as const),
  /** `off` becomes '' (an empty app setting means the default, so "off" needs a word). */
  UC_ASN_EDITION: oneOf(['GeoLite2-ASN', 'GeoIP2-ISP', 'off'] as const).transform((v) =>
    v === 'off' ? ('' as const) : v,
  ),
  UC_ASN_BLOB: text(
    /^$|^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])\/[^\s]+$/,
    'container/blob (e.g. geoip/GeoLite2-ASN.mmdb), or empty',
  ),
  UC_AZURE_RANGES: oneOf(['on', 'off'] as const),
  UC_SERVICE_TAGS_BLOB: text(
    /^$|^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])\/[^\s]+$/,
    'container/blob (e.g. geoip/ServiceTags.json), or empty',
  ),
  UC_SERVICE_TAGS_SUBSCRIPTION_ID: text(
    /^$|^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
    'a subscription id (GUID), or empty',
  ),
  UC_SERVICE_TAGS_LOCATION: text(/^[a-z0-9]{1,40}$/, 'an Azure location name such as westeurope'),
  UC_SERVICE_TAGS_REFRESH_SCHEDULE: ncrontab,
  UC_GEOIP_REFRESH_SCHEDULE: ncrontab,
  UC_GEOIP_MAX_AGE_DAYS: number(1, 3650),
  UC_MAXMIND_ACCOUNT_ID: secret(/^$|^\d{1,12}$/, 'a MaxMind account id (digits), or empty'),
  UC_MAXMIND_LICENSE_KEY: secret(
    /^$|^[A-Za-z0-9_]{6,64}$/,
    'a MaxMind licence key (letters, digits, _), or empty',
  ),
  UC_MAXMIND_DOWNLOAD_URL: optionalUrl("MaxMind's download service"),
  UC_INGESTION_ENDPOINT: optionalUrl('a data collection endpoint or DCR'),
  UC_DCR_IMMUTABLE_ID: text(
    /^$|^dcr-[0-9a-f]{32}$/i,
    'a DCR immutable id (dcr- followed by 32 hex digits), or empty',
  ),
  UC_ARM_ENDPOINT: optionalUrl('Azure Resource Manager'),
  UC_IDENTITY_PRINCIPAL_ID: text(
    /^$|^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
    'a principal (object) id (GUID), or empty',
  ),
  UC_WORKSPACE_RESOURCE_ID: resourceId('Microsoft.OperationalInsights/workspaces'),
  UC_STORAGE_RESOURCE_ID: resourceId('Microsoft.Storage/storageAccounts'),
  UC_DCR_RESOURCE_ID: resourceId('Microsoft.Insights/dataCollectionRules'),
  UC_KEY_VAULT_RESOURCE_ID: resourceId('Microsoft.KeyVault/vaults'),
  UC_APPINSIGHTS_RESOURCE_ID: resourceId('Microsoft.Insights/components'),
  UC_ANALYTICS_RULE_ID: resourceId(
    'Microsoft.OperationalInsights/workspaces/<workspace>/providers/Microsoft.SecurityInsights/alertRules',
  ),
  UC_TELEMETRY_INCLUDE_IDENTITIES: bool,
  UC_ALLOW_RANGES: z.string().superRefine((text, ctx) => {
    try {
      parseEgressRanges(text);
    } catch (e) {
      ctx.addIssue({
        code: 'custom',
        message: (e instanceof Error ? e.message : String(e)).replace(/UC_EGRESS_RANGES/g, 'UC_ALLOW_RANGES'),
      });
    }
  }),
  UC_ALLOW_CITIES: listOf(/^\d{1,10}$/, 'comma-separated MaxMind geoname ids (digits), e.g. 2643743'),
  UC_ALLOW_CALLERS: listOf(/^[A-Za-z0-9@._+'-]{1,256}$/, 'comma-separated callers (UPNs or object ids)'),
  UC_ALLOW_OPERATIONS: listOf(
    /^[A-Za-z0-9._/-]{1,256}$/,
    'comma-separated operation names such as Microsoft.Storage/storageAccounts/listKeys/action',
  ),
  UC_SERVICE_TAGS_FILE: z.string().transform((v) => v.trim()),
  UC_ALLOW_SERVICE_TAGS: listOf(
    /^[A-Za-z0-9.]{1,128}$/,
    'comma-separated service tag names such as AzureCloud.westeurope',
  ),
  UC_VERDICTS: oneOf(['on', 'off'] as const),
  UC_VERDICT_RULE_ID: text(
    /^$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
    "the analytics rule's id, a GUID such as 6f1c2a7e-3b9d-4c1e-8a2f-5d7e9b0c1a23, or empty",
  ),
  UC_VERDICT_LOOKBACK: duration(3_600_000, ' (at least 1h)'),
  UC_VERDICT_ALLOW_DAYS: number(0, 3650, true),
  UC_VERDICT_ALLOW_NETWORK: bool,
  UC_VERDICT_ALLOW_CITY_NETWORK: bool,
  UC_BOOTSTRAP_DAYS: number(1, 730, true),
  UC_SHARDING: oneOf(['off', 'queue'] as const),
  UC_SHARD_COUNT: number(1, 64, true),
  UC_QUEUE_ENDPOINT: optionalUrl('a Queue service'),
  UC_SHARD_QUEUE: text(
    /^[a-z0-9](?:[a-z0-9]|-(?!-)){1,55}[a-z0-9]$/,
    'a queue name: 3-57 lower-case letters, digits and single hyphens',
  ),
});

export type Settings = z.output<typeof schema>;
export type SettingName = keyof Settings;
export const SETTING_NAMES = Object.keys(schema.shape) as SettingName[];

/**
 * Credentials that can sit inside a value that is not itself secret (a connection string pasted into
 * UC_STORAGE_CONNECTION_STRING, a SAS URL in an endpoint): their values are never echoed.
 */
const CREDENTIAL_PARTS =
  /\b(AccountKey|SharedAccessKey|SharedAccessSignature|InstrumentationKey|sig|password|pwd)=[^;&\s]*/gi;

/** A value as errors may carry it: secrets masked, embedded credentials redacted. */
function redacted(name: string, value: string): string {
  return SECRET.has(name) ? '(secret, not shown)' : value.replace(CREDENTIAL_PARTS, '$1=(not shown)');
}

/**
 * A bad setting stops start-up: the message names the setting, the value and what is allowed. Values are kept
 * (in `problems` too) only as {@link redacted} shows them: the error is logged and sent to telemetry.
 */
export class SettingsError extends Error {
  readonly problems: { name: string; value: string; allowed: string }[];
  constructor(problems: { name: string; value: string; allowed: string }[]) {
    const safe = problems.map((p) => ({ ...p, value: redacted(p.name, p.value) }));
    super(
      safe
        .map(
          (p) =>
            `Invalid app setting ${p.name}=${SECRET.has(p.name) ? p.value : JSON.stringify(p.value)}: expected ${p.allowed}.`,
        )
        .join('\n'),
    );
    this.problems = safe;
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
