/**
 * The compiled CLI (`node dist/shared/cli/main.js`, built by test/support/build.ts) piped into a reader that stops
 * early, as in `unusual-city demo | head -1`: the reader closes the pipe after the first chunk, the CLI's next write
 * to stdout fails with EPIPE, and the CLI exits quietly with status 0 — no stack trace, no error message.
 *
 * `demo` writes its first line at once and the rest only after generating and replaying the tenant (seconds), so
 * the pipe is closed long before those writes.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, expect, test } from 'vitest';

import { CLI, cliEnv } from '../support/builtCli.js';

/** Generous: the machine may be loaded; the demo takes a few seconds when it is not. */
const KILL_AFTER_MS = 240_000;

let tmp = '';

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'uc-epipe-'));
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

interface ClosedEarly {
  code: number | null;
  signal: NodeJS.Signals | null;
  firstChunk: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs the CLI with stdout read until its first chunk, then closed. */
function runIntoClosingReader(args: readonly string[]): Promise<ClosedEarly> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: tmp,
    env: cliEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let firstChunk = '';
  let stderr = '';
  let timedOut = false;
  child.stdout.setEncoding('utf8').once('data', (d: string) => {
    firstChunk = d;
    child.stdout.destroy(); // what `head -1` does once it has its line
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, KILL_AFTER_MS);
  return new Promise((resolve, reject) => {
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, firstChunk, stderr, timedOut });
    });
  });
}

test(
  'a reader that closes after the first chunk: the CLI exits with 0 and says nothing of EPIPE',
  async () => {
    const r = await runIntoClosingReader([
      'demo',
      '--quiet',
      '--days',
      '14',
      '--out',
      path.join(tmp, 'demo'),
    ]);
    const how = r.timedOut ? 'timed out' : r.signal !== null ? `died of ${r.signal}` : `exited ${r.code}`;
    expect(r.firstChunk, 'the first chunk').toContain('unusual-city demo');
    expect(r.code, `${how}\n--- stderr ---\n${r.stderr}`).toBe(0);
    expect(r.signal).toBeNull();
    expect(r.stderr).not.toMatch(/EPIPE/);
    expect(r.stderr, 'a stack trace').not.toMatch(/^\s+at /m);
    expect(r.stderr).not.toMatch(/error/i);
  },
  KILL_AFTER_MS + 60_000,
);
