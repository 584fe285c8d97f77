/**
 * Runs a script in a separate Node process that imports the project's TypeScript sources directly.
 *
 * Node 20 cannot run TypeScript and tests must not depend on a build, so the child is started with a tiny
 * module loader that transpiles `.ts` files with the project's own `typescript` package (type-stripping only).
 * The child therefore executes the very code under test, not a copy of its SQL.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

const HOOKS = `
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const ts = createRequire(${JSON.stringify(path.join(projectRoot, 'package.json'))})('typescript');

// Sources import siblings as './x.js' (module nodenext); the file on disk is './x.ts'.
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    if (err?.code === 'ERR_MODULE_NOT_FOUND' && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) {
      return nextResolve(specifier.slice(0, -3) + '.ts', context);
    }
    throw err;
  }
}

export async function load(url, context, nextLoad) {
  if (!url.endsWith('.ts')) return nextLoad(url, context);
  const fileName = fileURLToPath(url);
  const { outputText } = ts.transpileModule(await readFile(fileName, 'utf8'), {
    fileName,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  });
  return { format: 'module', source: outputText, shortCircuit: true };
}
`;

const REGISTER = `
import { register } from 'node:module';
register('./hooks.mjs', import.meta.url);
`;

export interface TsChild {
  child: ChildProcess;
  /** Complete stdout lines received so far (a line cut by a kill is not included). */
  lines: string[];
  /** Resolves with the exit code (or signal name) and stderr when the process ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  /** Resolves once at least `n` lines have arrived; rejects if the process ends first. */
  waitForLines(n: number): Promise<void>;
}

/**
 * Writes the loader and `script` (an ES module) to a fresh temporary directory and runs it.
 * @param nodeArgs options for node itself, e.g. `--max-old-space-size=256`.
 */
export function runTsChild(
  script: string,
  args: readonly string[],
  nodeArgs: readonly string[] = [],
): TsChild {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'unusual-city-child-'));
  writeFileSync(path.join(dir, 'hooks.mjs'), HOOKS);
  writeFileSync(path.join(dir, 'register.mjs'), REGISTER);
  writeFileSync(path.join(dir, 'main.mjs'), script);
  const child = spawn(
    process.execPath,
    [
      ...nodeArgs,
      '--import',
      pathToFileURL(path.join(dir, 'register.mjs')).href,
      path.join(dir, 'main.mjs'),
      ...args,
    ],
    { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: string[] = [];
  let partial = '';
  let stderr = '';
  let closed = false;
  const waiters: { n: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  const settle = (): void => {
    for (const w of waiters.splice(0)) {
      if (lines.length >= w.n) w.resolve();
      else if (closed) w.reject(new Error(`child exited after ${lines.length} lines: ${stderr}`));
      else waiters.push(w);
    }
  };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    settle();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>(
    (resolve) => {
      child.on('close', (code, signal) => {
        closed = true;
        settle();
        rmSync(dir, { recursive: true, force: true });
        resolve({ code, signal, stderr });
      });
    },
  );
  return {
    child,
    lines,
    exited,
    waitForLines: (n) =>
      new Promise<void>((resolve, reject) => {
        waiters.push({ n, resolve, reject });
        settle();
      }),
  };
}

/** `file://` URL of a project source file, for dynamic import() in a child script. */
export function sourceUrl(relativeToRoot: string): string {
  return pathToFileURL(path.join(projectRoot, relativeToRoot)).href;
}
