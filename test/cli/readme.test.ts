/**
 * The README's way to run the CLI: `npm exec --no -- unusual-city …` inside the clone runs the compiled CLI, and
 * no documented command line runs it through an npx/npm exec that may install a package of that name from the npm
 * registry (it is not published there: anyone could publish one).
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { expect, test } from 'vitest';

import { VERSION } from '../../shared/version.js';
import { cliEnv } from '../support/builtCli.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

async function markdownFiles(): Promise<string[]> {
  const docs = path.join(ROOT, 'docs');
  const inDocs = (await readdir(docs, { recursive: true }))
    .filter((f) => f.endsWith('.md'))
    .map((f) => path.join(docs, f));
  return [path.join(ROOT, 'README.md'), ...inDocs];
}

test('no documented command line runs unusual-city through an npx or npm exec that may install it', async () => {
  const unsafe: string[] = [];
  for (const file of await markdownFiles()) {
    let inCode = false; // command lines: those of fenced code blocks (prose may name the unsafe form)
    (await readFile(file, 'utf8')).split('\n').forEach((line, i) => {
      if (/^\s*```/.test(line)) inCode = !inCode;
      const runs = /\b(npx|npm\s+exec|npm\s+x)\b(?<opts>[^\n]*?)\bunusual-city\b/.exec(line);
      if (inCode && runs !== null && !/(^|\s)--no(\s|$)/.test(runs.groups!.opts!))
        unsafe.push(`${path.relative(ROOT, file)}:${i + 1}: ${line.trim()}`);
    });
  }
  expect(unsafe).toEqual([]);
});

test('`npm exec --no -- unusual-city` inside the clone runs the compiled CLI', async () => {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const { stdout } = await promisify(execFile)(npm, ['exec', '--no', '--', 'unusual-city', '--version'], {
    cwd: ROOT,
    env: { ...cliEnv(), npm_config_offline: 'true' },
    timeout: 60_000,
  });
  expect(stdout.trim()).toBe(VERSION);
}, 90_000);
