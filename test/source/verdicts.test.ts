import { beforeAll, describe, expect, it } from 'vitest';

import { buildVerdictQuery, loadVerdictQuery, VERDICT_COLUMNS } from '../../shared/source/verdicts.js';
import {
  analyseKql,
  formatDiagnostics,
  securityAlertTable,
  securityIncidentTable,
} from '../support/kusto.js';

const RULE = '6f1c2a7e-3b9d-4c1e-8a2f-5d7e9b0c1a23';
const SINCE = Date.UTC(2026, 10, 1);
const sentinel = { tables: [securityIncidentTable(), securityAlertTable()] };

describe('shared/source/verdicts.kql, bound by Kusto.Language against SecurityIncident and SecurityAlert', () => {
  let template: string;
  beforeAll(async () => {
    template = await loadVerdictQuery();
  });

  it('has no syntax or semantic diagnostics', () => {
    const text = buildVerdictQuery(template, { ruleId: RULE, sinceMs: SINCE });
    expect(formatDiagnostics(analyseKql(text, sentinel).diagnostics)).toEqual([]);
  });

  it('returns the columns, with the types, that the reader expects', () => {
    const a = analyseKql(buildVerdictQuery(template, { ruleId: RULE, sinceMs: SINCE }), sentinel);
    expect(a.resultColumns).toEqual(Object.entries(VERDICT_COLUMNS));
  });

  it('negative controls: a misspelt column, a missing table and a broken join are reported', () => {
    const ok = buildVerdictQuery(template, { ruleId: RULE, sinceMs: SINCE });
    const typo = ok.replace('ClassificationReason,', 'ClassificationReasons,');
    expect(typo).not.toBe(ok);
    expect(formatDiagnostics(analyseKql(typo, sentinel).diagnostics).join('\n')).toContain(
      'ClassificationReasons',
    );
    const noAlerts = { tables: [securityIncidentTable()] };
    expect(formatDiagnostics(analyseKql(ok, noAlerts).diagnostics).join('\n')).toContain('SecurityAlert');
    const badJoin = ok.replace(') on SystemAlertId', ') on AlertIdx');
    expect(badJoin).not.toBe(ok);
    expect(analyseKql(badJoin, sentinel).diagnostics).not.toEqual([]);
  });

  it('binds only a GUID rule id and a datetime from a number: nothing else reaches the query', () => {
    const text = buildVerdictQuery(template, { ruleId: RULE.toUpperCase(), sinceMs: SINCE });
    expect(
      text.startsWith(`let ruleId = "${RULE}";\nlet since = datetime(2026-11-01T00:00:00.000Z);\n`),
    ).toBe(true);
    for (const bad of ['', `${RULE}"; SecurityAlert | take 1; let x = "`, 'not-a-guid', `${RULE} `])
      expect(() => buildVerdictQuery(template, { ruleId: bad, sinceMs: SINCE })).toThrow(/GUID/);
    for (const bad of [-1, 1.5, Number.NaN, Date.UTC(10000, 0, 1)])
      expect(() => buildVerdictQuery(template, { ruleId: RULE, sinceMs: bad })).toThrow(/sinceMs/);
  });
});
