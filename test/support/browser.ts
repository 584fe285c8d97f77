/**
 * The headless Chromium the browser tests launch: the binary inside the `@sparticuz/chromium` npm package, so
 * `npm ci` alone provides it (no system browser, no download). Its brotli archives are inflated once into
 * node_modules/.cache/ — writable and executable wherever `npm ci` ran, private to this checkout, and wiped with
 * node_modules, so a cached binary always matches the installed package version. Inflation goes to a staging
 * folder renamed into place when complete: an interrupted run never leaves a half-written browser behind.
 * Anything that fails here fails the test that asked, with the reason: a browser test never skips.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import sparticuz from '@sparticuz/chromium';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PACKAGE_JSON = path.join(ROOT, 'node_modules', '@sparticuz', 'chromium', 'package.json');
const CACHE = path.join(ROOT, 'node_modules', '.cache', 'unusual-city-chromium');

/** Flags of the package meant for pages it trusts less than we do (web security off): left out. */
const DROPPED = new Set(['--disable-web-security', '--allow-running-insecure-content']);
/** Offline page rendering: no background traffic of the browser's own. */
const OFFLINE = [
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  /** The chromium binary to pass to playwright-core's `executablePath`. */
  executablePath: string;
  /** Command-line flags for it (headless shell, no sandbox, no GPU, offline). */
  args: string[];
}

let pending: Promise<Browser> | undefined;

/** The packaged Chromium, inflated on first use (about 2 s, 200 MB). */
export function headlessChromium(): Promise<Browser> {
  pending ??= locate();
  return pending;
}

async function locate(): Promise<Browser> {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(
      `@sparticuz/chromium ships a Chromium for linux-x64 only; this is ${process.platform}-${process.arch}`,
    );
  }
  const { version } = JSON.parse(await readFile(PACKAGE_JSON, 'utf8')) as { version: string };
  const dir = path.join(CACHE, version);
  if (!existsSync(path.join(dir, 'chromium'))) await inflateInto(dir);
  sparticuz.setGraphicsMode = false;
  const args = sparticuz.args.filter((a) => !DROPPED.has(a));
  return { executablePath: path.join(dir, 'chromium'), args: [...args, ...OFFLINE] };
}

/** Runs the package's own inflation with its temp folder pointed at a fresh staging folder, then moves it. */
async function inflateInto(dir: string): Promise<void> {
  await mkdir(CACHE, { recursive: true });
  const staging = await mkdtemp(path.join(CACHE, 'staging-'));
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = staging; // os.tmpdir(), which the package inflates into, reads TMPDIR on each call
  try {
    const binary = await sparticuz.executablePath();
    if (binary !== path.join(staging, 'chromium')) {
      throw new Error(`@sparticuz/chromium inflated to ${binary}, expected ${staging}/chromium`);
    }
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
  try {
    await rename(staging, dir);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    // Another process finished first: its complete copy is as good as ours.
    if (!existsSync(path.join(dir, 'chromium'))) throw err;
  }
}
