import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterEach, describe, expect, it } from 'vitest';

// scripts/layers.mjs runs in `npm run lint`: no circle of imports anywhere, and in shared/ at most three imports
// that run back up the floors, each under an "// Upward import: why" comment.
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = join(ROOT, 'scripts', 'layers.mjs');

function check(root?: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [SCRIPT, '--print', ...(root ? ['--root', root] : [])], {
    encoding: 'utf8',
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

let trees: string[] = [];
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'uc-layers-'));
  trees.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}
afterEach(() => {
  for (const t of trees) rmSync(t, { recursive: true, force: true });
  trees = [];
});

describe('layers (npm run lint)', () => {
  it('the project has no circle and few, explained upward imports', () => {
    const r = check();
    expect(r.out).toMatch(/0 circle\(s\), [0-3] upward import\(s\)/);
    expect(r.status).toBe(0);
  });

  it('fails on a circle, type-only imports included', () => {
    const r = check(
      tree({
        'shared/runtime/detector.ts': "import type { Deps } from './shards.js';\nexport const a = 1;\n",
        'shared/runtime/shards.ts': "import { a } from './detector.js';\nexport type Deps = typeof a;\n",
      }),
    );
    expect(r.status).toBe(1);
    expect(r.out).toContain('circle of imports: shared/runtime/detector.ts -> shared/runtime/shards.ts');
  });

  it('fails on an upward import without a reason, passes with one', () => {
    const upward = (comment: string) =>
      tree({
        'shared/geo/provider.ts': `${comment}import type { LogFn } from '../pipeline/tick.js';\nexport type L = LogFn;\n`,
        'shared/pipeline/tick.ts': 'export type LogFn = () => void;\n',
      });
    const bare = check(upward(''));
    expect(bare.status).toBe(1);
    expect(bare.out).toContain('shared/geo/provider.ts:1: imports shared/pipeline/tick.ts');
    const explained = check(upward('// Upward import: the log type of the pipeline.\n'));
    expect(explained.status).toBe(0);
    expect(explained.out).toContain('upward: shared/geo/provider.ts:2 -> shared/pipeline/tick.ts');
  });

  it('fails on more than three upward imports, even explained', () => {
    const files: Record<string, string> = { 'shared/cli/main.ts': 'export const x = 1;\n' };
    for (const room of ['config', 'geo', 'scoring', 'alerts'])
      files[`shared/${room}/a.ts`] = "// Upward import: a test.\nexport { x } from '../cli/main.js';\n";
    const r = check(tree(files));
    expect(r.status).toBe(1);
    expect(r.out).toContain('4 upward imports in shared/ (at most 3)');
  });

  it('names a folder of shared/ that stands on no floor', () => {
    const r = check(
      tree({ 'shared/newroom/a.ts': "export { x } from '../cli/main.js';\n", 'shared/cli/main.ts': '' }),
    );
    expect(r.status).not.toBe(0);
    expect(r.out).toContain('shared/newroom stands on no floor');
  });
});
