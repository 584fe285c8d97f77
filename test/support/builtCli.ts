/**
 * Running the compiled CLI (`node dist/shared/cli/main.js`, built by test/support/build.ts) as a child process,
 * for the end-to-end tests whose contract is its exit code and output.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = path.join(ROOT, 'dist', 'shared', 'cli', 'main.js');

/** The CLI's environment: ours without UC_* settings, so a developer's shell cannot change the results. */
export function cliEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('UC_')) env[k] = v;
  return env;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  ms: number;
  timedOut: boolean;
}

const running = new Set<ChildProcess>();

/** Starts the CLI in `cwd`, killed with SIGKILL if it runs longer than `timeoutMs`. */
export function spawnCli(
  args: readonly string[],
  options: { cwd: string; timeoutMs: number; /** Added to cliEnv(). */ env?: Record<string, string> },
): { child: ChildProcess; result: Promise<CliResult> } {
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd,
    env: { ...cliEnv(), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs);
  const result = new Promise<CliResult>((resolve, reject) => {
    child.on('error', (err) => {
      clearTimeout(timer);
      running.delete(child);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started, timedOut });
    });
  });
  return { child, result };
}

/** Kills the CLI processes of this test file still running (for afterAll). */
export function killRunningClis(): void {
  for (const child of running) child.kill('SIGKILL');
}
