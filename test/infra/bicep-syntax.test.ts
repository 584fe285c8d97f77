import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  callsOf,
  declarations,
  filesUnder,
  INFRA,
  parseBicep,
  parseBicepSource,
  rel,
  stringLiteral,
} from './bicep.js';

const bicepFiles = filesUnder(INFRA, ['.bicep']);

describe('infra/**/*.bicep: syntax (tree-sitter-bicep)', () => {
  it('finds the templates: main, the subscription-scope Activity Log template and the modules', () => {
    const names = bicepFiles.map(rel);
    expect(names).toContain('infra/main.bicep');
    expect(names).toContain('infra/activity-log/main.bicep');
    expect(names.filter((n) => n.startsWith('infra/modules/')).length).toBeGreaterThanOrEqual(8);
  });

  it.each(bicepFiles.map((f) => [rel(f), f]))('%s parses with no error or missing node', async (_, path) => {
    const file = await parseBicep(path);
    expect(file.problems.map((p) => `${rel(path)}:${p.line}:${p.column} ${p.kind} ${p.text}`)).toEqual([]);
    // The grammar accepts an empty tree for anything it cannot start on: make sure the file really was read.
    expect(file.root.namedChildren.length).toBeGreaterThan(0);
  });

  it('avoids the constructs the grammar wrongly rejects (so a parse error always means a real one)', () => {
    // infra-facts.md: typed variables, spread, resourceInput/resourceOutput, extension, nullable user types,
    // resource-typed parameters and .bicepparam files. None of them is needed here.
    const known = [
      /^\s*var\s+\w+\s+\w+\s*=/m,
      /\.\.\.\w/,
      /\bresource(Input|Output)</,
      /^\s*extension\s/m,
      /^\s*param\s+\w+\s+resource\s/m,
    ];
    for (const path of bicepFiles) {
      const source = readFileSync(path, 'utf8');
      for (const pattern of known) expect(source, `${rel(path)} uses ${pattern}`).not.toMatch(pattern);
    }
    expect(filesUnder(INFRA, ['.bicepparam'])).toEqual([]);
  });

  it('negative controls: a missing brace, a stray token and an unterminated string are reported with positions', async () => {
    const main = readFileSync(resolve(INFRA, 'main.bicep'), 'utf8');
    const lastBrace = main.lastIndexOf('}');
    const missingBrace = await parseBicepSource(main.slice(0, lastBrace) + main.slice(lastBrace + 1));
    expect(missingBrace.problems.length).toBeGreaterThan(0);

    const stray = await parseBicepSource("param a string\nvar = 'x'\n");
    expect(stray.problems[0]).toMatchObject({ line: 2, kind: 'ERROR' });

    const unterminated = await parseBicepSource("var a = 'open\nvar b = 1\n");
    expect(unterminated.problems.length).toBeGreaterThan(0);
  });
});

describe('infra/**/*.bicep: references', () => {
  it('uses no registry modules (br:, br/public:, ts:): the templates build offline and are reviewed here', async () => {
    for (const path of bicepFiles) {
      const { modules } = declarations(await parseBicep(path));
      for (const m of modules) expect(m.path, `${rel(path)} module ${m.symbol}`).not.toMatch(/^(br|ts)[:/]/);
      expect(readFileSync(path, 'utf8')).not.toMatch(/['"](br|ts)(\/public)?:/);
    }
  });

  it('every module, import and load*Content() path names an existing file', async () => {
    let checked = 0;
    for (const path of bicepFiles) {
      const file = await parseBicep(path);
      const { modules, imports } = declarations(file);
      const paths = [
        ...modules.map((m) => m.path),
        ...imports.map((i) => i.path),
        ...['loadJsonContent', 'loadTextContent', 'loadFileAsBase64', 'loadYamlContent'].flatMap((fn) =>
          callsOf(file.root, fn).map((args) => stringLiteral(args[0]) ?? `(not a literal in ${fn})`),
        ),
      ];
      for (const p of paths) {
        expect(existsSync(resolve(dirname(path), p)), `${rel(path)} refers to ${p}`).toBe(true);
        checked += 1;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(15);
  });

  it('every module of main.bicep is used, and every file under infra/modules is a module of main.bicep', async () => {
    const main = declarations(await parseBicep(resolve(INFRA, 'main.bicep')));
    const used = new Set(main.modules.map((m) => resolve(INFRA, m.path)));
    for (const path of bicepFiles.filter((f) => f.includes('/modules/'))) {
      // roles.bicep is imported by the modules (compile-time import of the role id map), not deployed.
      if (path.endsWith('/roles.bicep')) continue;
      expect(used.has(path), `${rel(path)} is not deployed by main.bicep`).toBe(true);
    }
  });
});
