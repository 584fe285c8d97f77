import { beforeAll, describe, expect, it } from 'vitest';

import { buildQuery, loadActivityQuery, RESULT_COLUMNS } from '../../shared/source/logAnalytics.js';
import { OUTPUT_COLUMNS } from '../support/fakeLogAnalytics.js';
import { analyse, describeDiagnostics } from './kusto.js';

/** The AzureActivity columns the query uses, with their Log Analytics types. */
const AZURE_ACTIVITY = {
  name: 'AzureActivity',
  schema:
    '(TimeGenerated:datetime, OperationNameValue:string, CallerIpAddress:string, Caller:string, ' +
    'Claims_d:dynamic, Authorization_d:dynamic, CategoryValue:string, ActivityStatusValue:string, ' +
    'CorrelationId:string, EventDataId:string, SubscriptionId:string, ResourceGroup:string, _ResourceId:string)',
};

const START = Date.UTC(2026, 10, 30, 12);
const END = Date.UTC(2026, 10, 30, 13);

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
    const a = analyse(text, AZURE_ACTIVITY);
    expect(a.hasSemantics).toBe(true);
    expect(describeDiagnostics(text, a.all)).toEqual([]);
  });

  it('returns the columns, with the types, that the reader and the fake service expect', () => {
    const a = analyse(buildQuery(template, { startMs: START, endMs: END }), AZURE_ACTIVITY);
    expect(a.columns).toEqual(Object.entries(RESULT_COLUMNS));
    expect(a.columns).toEqual(OUTPUT_COLUMNS);
  });

  it('negative controls: a misspelt column, a wrong type and a syntax error are all reported', () => {
    const ok = buildQuery(template, { startMs: START, endMs: END });
    const typo = ok.replace('make_set_if(CorrelationId,', 'make_set_if(CorrelationIdd,');
    expect(typo).not.toBe(ok);
    const t = analyse(typo, AZURE_ACTIVITY);
    expect(t.syntax).toEqual([]);
    expect(describeDiagnostics(typo, t.all).join('\n')).toContain('CorrelationIdd');

    const wrongType = ok.replace('let maxBytes = 25165824;', 'let maxBytes = "big";');
    expect(describeDiagnostics(wrongType, analyse(wrongType, AZURE_ACTIVITY).all)).not.toEqual([]);

    const broken = ok.replace('| take maxRows + 1', '| take maxRows +');
    expect(analyse(broken, AZURE_ACTIVITY).syntax).not.toEqual([]);

    // Without the table the query is not valid either: the schema really is used.
    const other = { name: 'SomethingElse', schema: '(TimeGenerated:datetime)' };
    expect(
      analyse(ok, other)
        .all.map((d) => d.Message)
        .join('\n'),
    ).toContain('AzureActivity');
  });
});
