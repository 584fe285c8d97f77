import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { columnsTable, generatedDocs, render, settingsTable, staleDocs } from '../../scripts/docs.js';
import columnsFile from '../../shared/alerts/columns.json' with { type: 'json' };
import catalogue from '../../shared/config/settings.json' with { type: 'json' };

// docs/settings.md and docs/alert-columns.md hold tables generated from the catalogues (npm run docs):
// the drift test keeps them true.
describe('generated docs', () => {
  it('docs/settings.md and docs/alert-columns.md are what their catalogues give (npm run docs)', async () => {
    expect(await staleDocs()).toEqual([]);
  });

  it('every setting and every column has a row with its default or type', () => {
    const [settingsDoc, columnsDoc] = generatedDocs().map((d) => readFileSync(d.file, 'utf8'));
    for (const s of catalogue.settings) {
      const row = settingsDoc!.split('\n').find((l) => l.startsWith(`| \`${s.name}\``));
      expect(row, s.name).toContain(s.default === '' ? '(empty)' : `\`${s.default}\``);
    }
    for (const c of columnsFile.columns) {
      const row = columnsDoc!.split('\n').find((l) => l.startsWith(`| \`${c.name}\``));
      expect(row, c.name).toMatch(new RegExp(`^\\| \`${c.name}\` +\\| ${c.type} +\\|`));
    }
  });

  it('a changed catalogue makes the page stale', async () => {
    const [settingsDoc] = generatedDocs();
    const page = readFileSync(settingsDoc!.file, 'utf8');
    const changed = catalogue.settings.map((s) =>
      s.name === 'UC_ALERT_THRESHOLD' ? { ...s, default: '55' } : s,
    );
    const rendered = await render(page, { ...settingsDoc!, table: settingsTable(changed) });
    expect(rendered).not.toBe(page);
    expect(rendered).toMatch(/\| `UC_ALERT_THRESHOLD` +\| `55` +\|/);
  });

  it('escapes a pipe in a description so it cannot break the table', () => {
    const table = columnsTable([{ name: 'X', type: 'string', description: 'a | b' }]);
    expect(table.split('\n')[2]).toBe('| `X` | string | a \\| b |');
  });

  it('refuses a page without its markers', async () => {
    const [doc] = generatedDocs();
    await expect(render('# no markers\n', doc!)).rejects.toThrow('markers');
  });
});
