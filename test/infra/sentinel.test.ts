import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import columnsFile from '../../shared/alerts/columns.json' with { type: 'json' };
import { evaluateKql, type KqlValue } from '../support/kqlEval.js';
import { alertsTable, analyseKql, azureActivityTable, customEventsTable } from '../support/kusto.js';
import {
  arrayElements,
  type Declarations,
  declarations,
  INFRA,
  objectProperties,
  parseBicep,
  propertyAt,
  type ResourceDecl,
  ROOT,
  squash,
  stringLiteral,
} from './bicep.js';
import {
  allItems,
  allQueryStrings,
  APP_INSIGHTS_RESOURCE_TYPE,
  loadWorkbook,
  type Workbook,
  type WorkbookItem,
  workbookQueries,
} from './workbook.js';

/**
 * The Sentinel content agrees with itself and with the data: the rule's schedule with its query, its entity
 * mappings, custom details and overrides with the query's result columns, the workbook's visualisations with
 * its queries' columns, the health section with the telemetry the code sends.
 */

const ruleQuery = readFileSync(join(INFRA, 'sentinel/rule.kql'), 'utf8');
const workspaceTables = [alertsTable(), azureActivityTable()];

let sentinel: Declarations;
let rule: ResourceDecl;

beforeAll(async () => {
  sentinel = declarations(await parseBicep(join(INFRA, 'modules/sentinel.bicep')));
  rule = sentinel.resources.find((r) => r.type === 'Microsoft.SecurityInsights/alertRules')!;
});

const text = (path: string): string | undefined => {
  const node = propertyAt(rule.body, path);
  return node ? (stringLiteral(node) ?? node.text) : undefined;
};

/** ISO 8601 (PT15M, PT1H, P1D) or KQL (15m, 1h, 1d) duration → milliseconds. */
function durationMs(value: string): number {
  const iso = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$/.exec(value);
  if (iso) return ((Number(iso[1] ?? 0) * 24 + Number(iso[2] ?? 0)) * 60 + Number(iso[3] ?? 0)) * 60_000;
  const kql = /^(\d+)([mhd])$/.exec(value);
  if (kql) return Number(kql[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[kql[2] as 'm' | 'h' | 'd'];
  throw new Error(`not a duration: ${value}`);
}

/** A result value as text (strings as they are). */
const textOf = (v: KqlValue | undefined): string => (typeof v === 'string' ? v : JSON.stringify(v ?? null));

const letValue = (name: string): string => {
  const m = new RegExp(`^let ${name} = (\\w+);`, 'm').exec(ruleQuery);
  if (!m?.[1]) throw new Error(`rule.kql has no "let ${name} = ...;"`);
  return m[1];
};

describe('Sentinel analytics rule (modules/sentinel.bicep + sentinel/rule.kql)', () => {
  it('is a Scheduled rule named with guid(), loading its query from rule.kql', () => {
    expect(text('kind')).toBe('Scheduled');
    expect(propertyAt(rule.body, 'name')?.text).toMatch(/^guid\(workspace\.id, /);
    expect(propertyAt(rule.body, 'scope')?.text).toBe('workspace');
    expect(squash(propertyAt(rule.body, 'properties.query')?.text ?? '')).toBe(
      "replace(loadTextContent('../sentinel/rule.kql'), defaultTableName, tableName)",
    );
    expect(squash(sentinel.variables.get('defaultTableName')?.text ?? '')).toBe(
      "loadJsonContent('../../shared/alerts/columns.json').table",
    );
    expect(ruleQuery).toContain(columnsFile.table);
  });

  it("runs every 15 minutes over the last 14 days, and the query's own frequency and lookback agree", () => {
    expect(text('properties.queryFrequency')).toBe('PT15M');
    // The longest period Sentinel allows: the latest an alert may arrive and still raise an incident.
    expect(text('properties.queryPeriod')).toBe('P14D');
    expect(durationMs(letValue('frequency'))).toBe(durationMs(text('properties.queryFrequency')!));
    expect(durationMs(letValue('lookback'))).toBe(durationMs(text('properties.queryPeriod')!));
    // The lookback covers several runs (ingestion delay), and the first-ingestion filter keeps each alert in one.
    expect(durationMs(letValue('lookback'))).toBeGreaterThan(durationMs(letValue('frequency')));
    expect(ruleQuery).toMatch(/FirstIngested = min\(Ingested\)/);
    expect(ruleQuery).toMatch(/where FirstIngested > ago\(frequency \+ lateStart\)/);
    expect(durationMs(letValue('lateStart'))).toBeLessThan(durationMs(letValue('frequency')));
  });

  it('selects by arrival (ingestion_time()), not by TimeGenerated, the detection slot (issue 14, point 8)', () => {
    expect(ruleQuery).toMatch(/\| extend Ingested = ingestion_time\(\)\n/);
    expect(ruleQuery).toMatch(
      /\| summarize FirstIngested = min\(Ingested\), arg_max\(TimeGenerated, \*\) by AlertId\n/,
    );
    // The only TimeGenerated filter is the whole query period, which Sentinel applies anyway.
    const code = ruleQuery.replace(/\/\/.*$/gm, '');
    expect([...code.matchAll(/where TimeGenerated > ago\((\w+)\)/g)].map((m) => m[1])).toEqual(['lookback']);
    // test/infra/rule.e2e.test.ts evaluates the query over delivered rows at the rule's schedule.
  });

  it("binds even before the new table's schema has propagated: an empty datatable with exactly the column file's columns, unioned fuzzily", () => {
    const m = /union isfuzzy=true\s*\(datatable\(([^)]*)\)\[\]\),\s*(\w+)\n/.exec(ruleQuery);
    expect(m?.[2]).toBe(columnsFile.table);
    const declared = (m?.[1] ?? '').split(',').map((c) => c.trim().split(/\s*:\s*/));
    expect(declared).toEqual(columnsFile.columns.map((c) => [c.name, c.type]));
  });

  it("the incident's title, description and Operation detail use display columns: no control or format characters, bounded; raw values stay", () => {
    const overrides = propertyAt(rule.body, 'properties.alertDetailsOverride');
    const formats = [...objectProperties(overrides)]
      .filter(([k]) => k.endsWith('Format'))
      .map(([, v]) => stringLiteral(v)!);
    const used = formats.flatMap((f) => [...f.matchAll(/\{\{(\w+)\}\}/g)].map((m) => m[1]!));
    expect(used.sort()).toEqual(['AlertName', 'CityDisplay', 'DescriptionDisplay', 'OperationDisplay']);
    expect(text('properties.customDetails.Operation')).toBe('OperationDisplay');
    const hostile = `Microsoft.Storage/\u202egnp.exe\u0007\u200b\u2028${'"\\'.repeat(300)}`;
    const [row] = evaluateKql(ruleQuery, {
      schemas: [alertsTable()],
      data: {
        [columnsFile.table]: [
          {
            row: {
              TimeGenerated: '2026-01-01T09:00:00Z',
              AlertId: 'a',
              AlertName: 'Unusual City for an Azure Activity Logs Event',
              Operation: hostile,
              Caller: `evil\u202e@contoso.com`,
              SrcGeoCity: 'Lagos\u0000',
              Description: `x\u001b[31m${'y'.repeat(5000)}`,
              ResourceIds: [],
            },
            ingestedMs: Date.UTC(2026, 0, 1, 11, 58),
          },
        ],
      },
      nowMs: Date.UTC(2026, 0, 1, 12),
    });
    const unsafe = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
    for (const c of ['OperationDisplay', 'CallerDisplay', 'CityDisplay', 'DescriptionDisplay']) {
      expect(textOf(row?.[c]), c).not.toMatch(unsafe);
    }
    expect(textOf(row?.OperationDisplay)).toMatch(/^Microsoft\.Storage\/gnp\.exe"\\/);
    expect(textOf(row?.OperationDisplay)).toHaveLength(100);
    expect(textOf(row?.OperationDisplay).endsWith('…')).toBe(true);
    expect(row?.CallerDisplay).toBe('evil@contoso.com');
    expect(row?.CityDisplay).toBe('Lagos');
    expect(textOf(row?.DescriptionDisplay).length).toBeLessThanOrEqual(2000);
    // Raw values for hunting.
    expect(row?.Operation).toBe(hostile);
    expect(row?.Caller).toBe('evil\u202e@contoso.com');
    // The title stays within Sentinel's 256 characters with the default alert name.
    const title = formats[0]!.replace(/\{\{(\w+)\}\}/g, (_, c: string) => textOf(row?.[c]));
    expect(title.length).toBeLessThanOrEqual(256);
  });

  it("every column the rule maps (entities, custom details, overrides) is in the query's result", () => {
    const a = analyseKql(ruleQuery, { tables: workspaceTables });
    expect(a.diagnostics).toEqual([]);
    const columns = new Set(a.resultColumns.map(([n]) => n));
    const mapped: string[] = [];
    for (const mapping of arrayElements(propertyAt(rule.body, 'properties.entityMappings'))) {
      for (const field of arrayElements(propertyAt(mapping, 'fieldMappings'))) {
        mapped.push(stringLiteral(propertyAt(field, 'columnName'))!);
      }
    }
    for (const v of objectProperties(propertyAt(rule.body, 'properties.customDetails')).values()) {
      mapped.push(stringLiteral(v)!);
    }
    const overrides = propertyAt(rule.body, 'properties.alertDetailsOverride');
    for (const [key, v] of objectProperties(overrides)) {
      const value = stringLiteral(v)!;
      if (key.endsWith('Format')) mapped.push(...[...value.matchAll(/\{\{(\w+)\}\}/g)].map((m) => m[1]!));
      else mapped.push(value);
    }
    expect(mapped.length).toBeGreaterThanOrEqual(12);
    for (const c of mapped) expect(columns, c).toContain(c);
  });

  it('maps Account (UPN and object id), IP and AzureResource entities', () => {
    const mappings = arrayElements(propertyAt(rule.body, 'properties.entityMappings')).map((m) => ({
      entity: stringLiteral(propertyAt(m, 'entityType')),
      fields: arrayElements(propertyAt(m, 'fieldMappings')).map(
        (f) => `${stringLiteral(propertyAt(f, 'identifier'))}=${stringLiteral(propertyAt(f, 'columnName'))}`,
      ),
    }));
    expect(mappings).toEqual([
      { entity: 'Account', fields: ['FullName=AccountUpn'] },
      { entity: 'Account', fields: ['AadUserId=AccountObjectId'] },
      { entity: 'IP', fields: ['Address=SrcIpAddr'] },
      { entity: 'AzureResource', fields: ['ResourceId=ResourceId'] },
    ]);
    expect(ruleQuery).toMatch(/AccountUpn = iff\(Caller contains '@', Caller, ''\)/);
    expect(ruleQuery).toMatch(/AccountObjectId = iff\(Caller matches regex objectIdPattern, Caller, ''\)/);
  });

  it("custom details (city, country, score, operation) and overrides stay within Sentinel's limits", () => {
    const details = objectProperties(propertyAt(rule.body, 'properties.customDetails'));
    expect(details.size).toBeLessThanOrEqual(20);
    expect(Object.fromEntries([...details].map(([k, v]) => [k, stringLiteral(v)]))).toMatchObject({
      City: 'SrcGeoCity',
      Country: 'SrcGeoCountry',
      AnomalyScore: 'AnomalyScore',
      Operation: 'OperationDisplay',
    });
    for (const key of details.keys()) expect(key).toMatch(/^[A-Za-z0-9]{1,20}$/);
    const name = text('properties.alertDetailsOverride.alertDisplayNameFormat')!;
    const description = text('properties.alertDetailsOverride.alertDescriptionFormat')!;
    expect(name.match(/\{\{/g)?.length).toBeLessThanOrEqual(3);
    expect(description.match(/\{\{/g)?.length).toBeLessThanOrEqual(3);
    expect(text('properties.alertDetailsOverride.alertSeverityColumnName')).toBe('Severity');
  });

  it('MITRE: tactic InitialAccess, parent technique T1078 (sub-techniques need a preview API), named in the description', () => {
    expect(arrayElements(propertyAt(rule.body, 'properties.tactics')).map(stringLiteral)).toEqual([
      'InitialAccess',
    ]);
    const techniques = arrayElements(propertyAt(rule.body, 'properties.techniques')).map(stringLiteral);
    expect(techniques).toEqual(['T1078']);
    for (const t of techniques) expect(t).toMatch(/^T\d{4}$/);
    expect(rule.apiVersion).not.toMatch(/preview/);
    expect(propertyAt(rule.body, 'properties.subTechniques')).toBeUndefined();
    expect(text('properties.description')).toContain('T1078.004');
  });

  it('one alert per result, incidents grouped by caller (the Account entity)', () => {
    expect(text('properties.eventGroupingSettings.aggregationKind')).toBe('AlertPerResult');
    expect(text('properties.incidentConfiguration.createIncident')).toBe('true');
    const grouping = 'properties.incidentConfiguration.groupingConfiguration';
    expect(text(`${grouping}.enabled`)).toBe('true');
    expect(text(`${grouping}.matchingMethod`)).toBe('Selected');
    expect(arrayElements(propertyAt(rule.body, `${grouping}.groupByEntities`)).map(stringLiteral)).toEqual([
      'Account',
    ]);
    expect(durationMs(text(`${grouping}.lookbackDuration`)!)).toBeGreaterThanOrEqual(durationMs('1h'));
  });
});

describe('Sentinel workbook (modules/sentinel.bicep + sentinel/workbook/workbook.json)', () => {
  let workbook: Workbook;
  beforeAll(() => {
    workbook = loadWorkbook();
  });

  it('is deployed from the JSON with the workspace and App Insights placeholders and the table name replaced', () => {
    const content = squash(sentinel.variables.get('workbookContent')?.text ?? '');
    expect(content).toContain("loadTextContent('../sentinel/workbook/workbook.json')");
    expect(content).toContain("'__WORKSPACE_RESOURCE_ID__', workspace.id");
    expect(content).toContain("'__APP_INSIGHTS_RESOURCE_ID__', appInsightsResourceId");
    expect(content).toContain('defaultTableName, tableName');
    const resource = sentinel.resources.find((r) => r.type === 'Microsoft.Insights/workbooks')!;
    expect(stringLiteral(propertyAt(resource.body, 'kind'))).toBe('shared');
    expect(stringLiteral(propertyAt(resource.body, 'properties.category'))).toBe('sentinel');
    expect(propertyAt(resource.body, 'properties.sourceId')?.text).toBe('workspace.id');
    expect(propertyAt(resource.body, 'properties.serializedData')?.text).toBe('workbookContent');
    expect(propertyAt(resource.body, 'name')?.text).toMatch(/^guid\(/);
  });

  it('is a Notebook/1.0 document whose items have unique names', () => {
    expect(workbook.version).toBe('Notebook/1.0');
    expect(workbook.fallbackResourceIds).toEqual(['__WORKSPACE_RESOURCE_ID__']);
    const names = allItems(workbook.items).map((i) => i.name);
    expect(names.every((n) => typeof n === 'string')).toBe(true);
    expect(new Set(names).size).toBe(names.length);
  });

  it('the query extraction misses no query, and every parameter token names a workbook parameter', () => {
    const queries = workbookQueries(workbook);
    expect(queries.map((q) => q.raw).sort()).toEqual(allQueryStrings(workbook).sort());
    for (const q of queries) expect(q.unknownTokens, q.where).toEqual([]);
  });

  it('every query item follows the time range picker', () => {
    for (const q of workbookQueries(workbook)) {
      const content = q.item?.content;
      if (content) expect(content.timeContextFromParameter, q.where).toBe('TimeRange');
    }
  });

  const item = (name: string): WorkbookItem => {
    const found = allItems(workbook.items).find((i) => i.name === name);
    if (!found) throw new Error(`workbook item ${name} not found`);
    return found;
  };
  const resultColumns = (i: WorkbookItem): Set<string> => {
    const q = workbookQueries(workbook).find((x) => x.item === i)!;
    const tables = q.source === 'appInsights' ? [customEventsTable()] : workspaceTables;
    const a = analyseKql(q.kql, { tables });
    expect(a.diagnostics, q.where).toEqual([]);
    return new Set(a.resultColumns.map(([n]) => n));
  };

  it('has alerts over time, top operations and callers, and the score distribution', () => {
    expect(item('alerts-over-time').content.visualization).toBe('timechart');
    expect(resultColumns(item('top-operations'))).toContain('Operation');
    expect(resultColumns(item('top-callers'))).toContain('Caller');
    expect(item('score-distribution').content.query).toContain('AnomalyScore');
  });

  it("maps alert cities and the selected operation's known cities as points, from their latitude/longitude", () => {
    const maps = allItems(workbook.items).filter((i) => i.content.visualization === 'map');
    expect(maps.length).toBeGreaterThanOrEqual(2);
    for (const m of maps) {
      const settings = m.content.mapSettings as Record<string, unknown>;
      expect(settings.locInfo, m.name).toBe('LatLong');
      const columns = resultColumns(m);
      for (const key of ['latitude', 'longitude', 'locInfoColumn', 'sizeSettings', 'labelSettings']) {
        const column = settings[key];
        if (typeof column === 'string') expect(columns, `${m.name}: mapSettings.${key}`).toContain(column);
      }
    }
    expect(item('alert-cities-map').content.query).toContain('SrcGeoLatitude');
    const known = item('known-cities-map');
    expect(known.content.query).toContain("'{Operation:escape}'");
    expect(known.content.query).toMatch(
      /Latitude = todouble\(KnownCity\.latitude\), Longitude = todouble\(KnownCity\.longitude\)/,
    );
    expect(known.content.mapSettings).toMatchObject({ latitude: 'Latitude', longitude: 'Longitude' });
    // The code writes the coordinates into every BaselineCities entry.
    const alertCode = readFileSync(join(ROOT, 'shared/alerts/alert.ts'), 'utf8');
    expect(alertCode).toMatch(
      /BaselineCities: rarity\.knownCities\.map\(\(k\) => \(\{[^}]*latitude: k\.latitude,\s*longitude: k\.longitude,/,
    );
  });

  it('shows operations and callers through one display function (format and control characters removed, bounded); filters match the raw value', () => {
    const DISPLAY =
      "let display = (s: string) { let clean = replace_regex(s, strcat(@'[\\pC', unicode_codepoints_to_string(dynamic([8232, 8233])), ']'), ''); iff(strlen(clean) > 100, strcat(substring(clean, 0, 99), '…'), clean) };\n";
    const parameter = workbookQueries(workbook).find((q) => q.where === 'workbook parameter Operation')!;
    expect(parameter.raw.startsWith(DISPLAY)).toBe(true);
    expect(parameter.raw).toMatch(/\| project value = Operation, label = display\(Operation\)$/);
    expect(
      new Set(analyseKql(parameter.kql, { tables: workspaceTables }).resultColumns.map(([n]) => n)),
    ).toEqual(new Set(['value', 'label']));
    for (const [name, column] of [
      ['top-operations', 'Operation'],
      ['top-callers', 'Caller'],
    ] as const) {
      const query = item(name).content.query as string;
      expect(query.startsWith(DISPLAY), name).toBe(true);
      expect(query, name).toMatch(new RegExp(`\\| extend ${column} = display\\(${column}\\)$`));
    }
    // Titles show the label (the display form), never the raw parameter value.
    for (const i of allItems(workbook.items)) {
      expect(JSON.stringify(i.content.title ?? ''), i.name).not.toMatch(/\{Operation\}/);
    }
    // \pC (RE2's one-letter class, no braces a workbook would read as a parameter) is \p{C} in JavaScript.
    const clean = (s: string) => s.replace(/[\p{C}\u2028\u2029]/gu, '');
    expect(clean('Micro\u202esoft\u200b/\u0007x\u2028y')).toBe('Microsoft/xy');
  });

  it('reads detector health from Application Insights customEvents, as the code sends them', () => {
    const health = workbookQueries(workbook).filter((q) => q.source === 'appInsights');
    expect(health.length).toBeGreaterThanOrEqual(3);
    for (const q of health) {
      expect(q.item?.content.crossComponentResources, q.where).toEqual(['__APP_INSIGHTS_RESOURCE_ID__']);
      expect(q.item?.content.resourceType).toBe(APP_INSIGHTS_RESOURCE_TYPE);
      expect(q.raw, q.where).toContain("where name == 'UnusualCityRun'");
    }
    const all = health.map((q) => q.raw).join('\n');
    const telemetry = readFileSync(join(ROOT, 'shared/runtime/telemetry.ts'), 'utf8');
    expect(telemetry).toContain("name: 'UnusualCityRun'");
    for (const m of [
      'ticks',
      'events',
      'observations',
      'alerts',
      'delivered',
      'pendingOutbox',
      'geoIpAgeDays',
      'totalMs',
    ]) {
      expect(all, `customMeasurements.${m}`).toContain(`customMeasurements.${m}`);
      expect(telemetry, `telemetry.ts sends ${m}`).toMatch(new RegExp(`\\b${m}: `));
    }
    for (const d of ['invocationId', 'stoppedBecause', 'geoIpBuildDate']) {
      expect(all, `customDimensions.${d}`).toContain(`customDimensions.${d}`);
      expect(telemetry, `telemetry.ts sends ${d}`).toMatch(new RegExp(`\\b${d}: `));
    }
  });
});
