/**
 * What the Function App loads: the static import graph of every function module (compiled, as deployed). It must
 * not reach better-sqlite3 (a native addon for local state only: built for the Node that packaged it, not the
 * one Azure runs) or anything that is only a devDependency.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FUNCTIONS = path.join(ROOT, 'dist', 'functions');

function packagesLoadedBy(entries: string[]): Set<string> {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const stack = [...entries];
  for (let f = stack.pop(); f !== undefined; f = stack.pop()) {
    if (seen.has(f)) continue;
    seen.add(f);
    const src = readFileSync(f, 'utf8');
    // Static imports and re-exports only: `await import(...)` is loaded when used, not with the function.
    for (const m of src.matchAll(
      /^(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|^import\s*['"]([^'"]+)['"]/gm,
    )) {
      const spec = m[1] ?? m[2]!;
      if (spec.startsWith('.')) stack.push(path.resolve(path.dirname(f), spec));
      else packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  }
  return packages;
}

it('the Function App does not load better-sqlite3 or any devDependency', () => {
  const entries = readdirSync(FUNCTIONS)
    .filter((f) => f.endsWith('.js'))
    .map((f) => path.join(FUNCTIONS, f));
  expect(entries.length).toBeGreaterThanOrEqual(4);
  const loaded = packagesLoadedBy(entries);
  expect(loaded).toContain('@azure/functions');
  expect(loaded).toContain('@azure/monitor-query-logs');
  expect(loaded).not.toContain('better-sqlite3');
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  const external = [...loaded].filter((p) => !p.startsWith('node:'));
  expect(external.filter((p) => !(p in pkg.dependencies))).toEqual([]);
});
