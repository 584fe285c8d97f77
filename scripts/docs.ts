/**
 * Generates the tables of docs/settings.md and docs/alert-columns.md from their catalogues
 * (shared/config/settings.json, shared/alerts/columns.json), between the `<!-- NAME:start -->` and
 * `<!-- NAME:end -->` markers, formatted by the repository's prettier configuration.
 *
 *   npm run docs            rewrites both files
 *   npm run docs -- --check exits 1 when a file differs from what the catalogues give (test/docs checks it too)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import * as prettier from 'prettier';

import columnsFile from '../shared/alerts/columns.json' with { type: 'json' };
import settingsFile from '../shared/config/settings.json' with { type: 'json' };

export interface SettingEntry {
  name: string;
  default: string;
  description: string;
  secret?: boolean;
}
export interface ColumnEntry {
  name: string;
  type: string;
  description: string;
}

/** A generated section of a docs page: the file, its marker name and the table the catalogue gives. */
export interface GeneratedDoc {
  file: string;
  marker: string;
  table: string;
}

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

export function settingsTable(settings: readonly SettingEntry[]): string {
  const rows = settings.map((s) => {
    const value = s.default === '' ? '(empty)' : `\`${cell(s.default)}\``;
    const meaning = cell(s.description) + (s.secret === true ? ' _(secret)_' : '');
    return `| \`${s.name}\` | ${value} | ${meaning} |`;
  });
  return ['| Setting | Default | Meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

export function columnsTable(columns: readonly ColumnEntry[]): string {
  const rows = columns.map((c) => `| \`${c.name}\` | ${c.type} | ${cell(c.description)} |`);
  return ['| Column | Type | Meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

const ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/dist\/$/, '');

/** The generated pages, from the catalogues as they are in the repository. */
export function generatedDocs(root = ROOT): GeneratedDoc[] {
  return [
    { file: `${root}docs/settings.md`, marker: 'settings', table: settingsTable(settingsFile.settings) },
    { file: `${root}docs/alert-columns.md`, marker: 'columns', table: columnsTable(columnsFile.columns) },
  ];
}

/** The page with the table between its markers replaced, formatted as prettier would leave it. */
export async function render(page: string, doc: GeneratedDoc): Promise<string> {
  const start = new RegExp(`(<!-- ${doc.marker}:start[^>]*-->)[\\s\\S]*?(<!-- ${doc.marker}:end -->)`);
  if (!start.test(page)) throw new Error(`${doc.file}: no <!-- ${doc.marker}:start --> … :end --> markers`);
  const replaced = page.replace(
    start,
    (_m, open: string, close: string) => `${open}\n\n${doc.table}\n\n${close}`,
  );
  const options = (await prettier.resolveConfig(doc.file)) ?? {};
  return prettier.format(replaced, { ...options, filepath: doc.file });
}

/** Files whose content differs from what the catalogues give. */
export async function staleDocs(docs = generatedDocs()): Promise<string[]> {
  const stale: string[] = [];
  for (const doc of docs) {
    const page = readFileSync(doc.file, 'utf8');
    if ((await render(page, doc)) !== page) stale.push(doc.file);
  }
  return stale;
}

async function main(args: readonly string[]): Promise<number> {
  if (args.includes('--check')) {
    const stale = await staleDocs();
    for (const file of stale) console.error(`${file} is out of date: run npm run docs`);
    return stale.length === 0 ? 0 : 1;
  }
  for (const doc of generatedDocs()) {
    writeFileSync(doc.file, await render(readFileSync(doc.file, 'utf8'), doc));
    console.log(`wrote ${doc.file}`);
  }
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
