/**
 * vitest globalSetup: compiles the project once (`tsc -p tsconfig.build.json` into dist/) before any test file
 * runs, so tests that spawn the compiled CLI work on a fresh clone without a prior `npm run build`.
 * A failed build fails the run with the compiler's output.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

export default async function build(): Promise<void> {
  const tsc = path.join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  await new Promise<void>((resolve, reject) => {
    execFile(
      process.execPath,
      [tsc, '-p', 'tsconfig.build.json'],
      { cwd: projectRoot, maxBuffer: 64 * 1024 * 1024, timeout: 300_000 },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve();
          return;
        }
        const output = `${stdout}${stderr}`.trim();
        const why = error.killed
          ? `killed (${error.signal ?? 'timeout'})`
          : `exit code ${String(error.code)}`;
        reject(
          new Error(
            `TypeScript build (tsc -p tsconfig.build.json) failed, ${why}:\n${output || error.message}`,
          ),
        );
      },
    );
  });
}
