import { beforeAll, describe, expect, it } from 'vitest';

import { buildQuery, loadActivityQuery, RESULT_COLUMNS } from '../../shared/source/logAnalytics.js';
import { OUTPUT_COLUMNS } from '../support/fakeLogAnalytics.js';
import { analyseKql, azureActivityTable, formatDiagnostics } from '../support/kusto.js';

const START = Date.UTC(2026, 10, 30, 12);
const END = Date.UTC(2026, 10, 30, 13);
const activity = { tables: [azureActivityTable()] };

describe('shared/source/activity.kql, analysed by Kusto.Language against the AzureActivity schema', () => {
  let template: string;
  beforeAll(async () => {
    template = await loadActivityQuery();
  });

  it.each([
    [
      'with category and status filters',
      { categories: ['Administrative', 'Security'], statuses: ['Succeeded'] },
    ],
    ['without filters (empty lists)', {}],
  ])('%s: no syntax or semantic diagnostics', (_, filters) => {
    const text = buildQuery(template, { startMs: START, endMs: END, ...filters });
    expect(formatDiagnostics(analyseKql(text, activity).diagnostics)).toEqual([]);
  });

  it('returns the columns, with the types, that the reader and the fake service expect', () => {
    const a = analyseKql(buildQuery(template, { startMs: START, endMs: END }), activity);
    expect(a.resultColumns).toEqual(Object.entries(RESULT_COLUMNS));
    expect(a.resultColumns).toEqual(OUTPUT_COLUMNS);
  });

  it('negative controls: a misspelt column, a wrong type, a syntax error and a missing table are reported', () => {
    const ok = buildQuery(template, { startMs: START, endMs: END });
    const typo = ok.replace('make_set_if(CorrelationId,', 'make_set_if(CorrelationIdd,');
    expect(typo).not.toBe(ok);
    expect(formatDiagnostics(analyseKql(typo, activity).diagnostics).join('\n')).toContain('CorrelationIdd');

    const wrongType = ok.replace('let maxBytes = 25165824;', 'let maxBytes = "big";');
    expect(wrongType).not.toBe(ok);
    expect(analyseKql(wrongType, activity).diagnostics).not.toEqual([]);

    const broken = ok.replace('| take maxRows + 1', '| take maxRows +');
    expect(analyseKql(broken, activity).diagnostics).not.toEqual([]);

    // Without the table the query is not valid either: the schema really is used.
    const other = { tables: [{ name: 'SomethingElse', columns: [['TimeGenerated', 'datetime']] as const }] };
    expect(formatDiagnostics(analyseKql(ok, other).diagnostics).join('\n')).toContain('AzureActivity');
  });
});
