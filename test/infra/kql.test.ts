import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { buildQuery, loadActivityQuery } from '../../shared/source/logAnalytics.js';
import {
  alertsTable,
  analyseKql,
  azureActivityTable,
  checkKql,
  customEventsTable,
  formatDiagnostics,
  type TableSchema,
} from '../support/kusto.js';
import { INFRA } from './bicep.js';
import { workbookQueries, type WorkbookQuery } from './workbook.js';

/**
 * Every KQL query the project ships binds in Kusto.Language against the schemas it runs on: the detection query
 * (AzureActivity), the Sentinel rule and the workbook (the alerts table, generated from shared/alerts/columns.json,
 * and AzureActivity), the workbook's health section (Application Insights customEvents).
 */

const workspaceTables: TableSchema[] = [alertsTable(), azureActivityTable()];
const ruleQuery = readFileSync(join(INFRA, 'sentinel/rule.kql'), 'utf8');

describe('test/support/kusto.ts, the KQL checking harness', () => {
  it('accepts a valid query and reports its result columns with Kusto types', () => {
    const a = analyseKql('UnusualCityAlerts_CL | summarize n = count() by AlertId | extend s = tostring(n)', {
      tables: [alertsTable()],
    });
    expect(a.diagnostics).toEqual([]);
    expect(a.resultColumns).toEqual([
      ['AlertId', 'string'],
      ['n', 'long'],
      ['s', 'string'],
    ]);
  });

  it('negative controls: unknown column, unknown table, wrong type and syntax error, each with line and column', () => {
    const unknownColumn = checkKql('UnusualCityAlerts_CL\n| where Cityy == "Paris"', {
      tables: [alertsTable()],
    });
    expect(unknownColumn).toMatchObject([{ code: 'KS142', line: 2, column: 9, text: 'Cityy' }]);

    const unknownTable = checkKql('AzureActivity | take 1', { tables: [alertsTable()] });
    expect(formatDiagnostics(unknownTable).join('\n')).toContain('AzureActivity');

    const wrongType = checkKql('UnusualCityAlerts_CL | where AnomalyScore > "high"', {
      tables: [alertsTable()],
    });
    expect(wrongType.length).toBeGreaterThan(0);

    const syntax = checkKql('UnusualCityAlerts_CL | where', { tables: [alertsTable()] });
    expect(syntax.length).toBeGreaterThan(0);
  });

  it('builds the alerts table from shared/alerts/columns.json, and rejects an unknown type', () => {
    const columns = JSON.parse(readFileSync(join(INFRA, '../shared/alerts/columns.json'), 'utf8')) as {
      columns: { name: string }[];
    };
    const table = alertsTable();
    for (const c of columns.columns) expect(table.columns.map(([n]) => n)).toContain(c.name);
    expect(() =>
      checkKql('T', { tables: [{ name: 'T', columns: [['a', 'nonsense' as 'string']] }] }),
    ).toThrow(/unknown Kusto type/);
  });
});

describe('shared/source/activity.kql, the detection query, with the header the code generates', () => {
  it.each([
    ['no filters', {}],
    ['category and status filters', { categories: ['Administrative', 'Security'], statuses: ['Succeeded'] }],
  ])('%s: binds against AzureActivity', async (_, filters) => {
    const template = await loadActivityQuery();
    const query = buildQuery(template, {
      startMs: Date.UTC(2026, 0, 1, 10),
      endMs: Date.UTC(2026, 0, 1, 11),
      ...filters,
    });
    expect(formatDiagnostics(checkKql(query, { tables: [azureActivityTable()] }), 'activity.kql')).toEqual(
      [],
    );
  });

  it('negative control: without the generated header its parameters are unknown names', async () => {
    const template = await loadActivityQuery();
    const messages = formatDiagnostics(checkKql(template, { tables: [azureActivityTable()] })).join('\n');
    expect(messages).toContain('windowStart');
  });
});

describe('infra/sentinel/rule.kql, the analytics rule query', () => {
  it('binds against the alerts table', () => {
    expect(formatDiagnostics(checkKql(ruleQuery, { tables: workspaceTables }), 'rule.kql')).toEqual([]);
  });

  it('dedupes on AlertId and keeps one row per alert', () => {
    expect(ruleQuery).toMatch(/summarize\s[^|]*arg_max\(TimeGenerated, \*\) by AlertId/);
    const columns = analyseKql(ruleQuery, { tables: workspaceTables }).resultColumns.map(([n]) => n);
    expect(columns).toContain('AlertId');
    expect(new Set(columns).size).toBe(columns.length);
  });

  it("negative control: a column that neither the table nor the fuzzy union's datatable has fails to bind", () => {
    const misspelt = ruleQuery.replace('tostring(ResourceIds[0])', 'tostring(ResourceIdz[0])');
    expect(misspelt).not.toBe(ruleQuery);
    expect(formatDiagnostics(checkKql(misspelt, { tables: workspaceTables })).join('\n')).toContain(
      'ResourceIdz',
    );
  });
});

describe('infra/sentinel/workbook/workbook.json: every query', () => {
  const queries = workbookQueries();

  it('finds the queries (items, groups and query-based parameters), both workspace and App Insights ones', () => {
    expect(queries.length).toBeGreaterThanOrEqual(10);
    expect(queries.some((q) => q.source === 'appInsights')).toBe(true);
    expect(queries.some((q) => q.source === 'workspace')).toBe(true);
  });

  const tablesFor = (q: WorkbookQuery): TableSchema[] =>
    q.source === 'appInsights' ? [customEventsTable()] : workspaceTables;

  it.each(queries.map((q) => [q.where, q]))('%s binds', (where, q) => {
    expect(formatDiagnostics(checkKql(q.kql, { tables: tablesFor(q) }), where)).toEqual([]);
  });

  it('negative control: a health query does not bind against the workspace tables (the schema choice matters)', () => {
    const health = queries.find((q) => q.source === 'appInsights')!;
    expect(checkKql(health.kql, { tables: workspaceTables }).length).toBeGreaterThan(0);
  });
});
