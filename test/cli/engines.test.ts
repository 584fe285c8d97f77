/**
 * "Node 20 or 22": every package `npm ci` installs from the lock file accepts every Node version package.json's
 * `engines` allows, so `npm ci` prints no EBADENGINE warning on either (npm checks the same `engines` fields the
 * lock file records).
 */
import { readFile } from 'node:fs/promises';

import semver from 'semver';
import { expect, test } from 'vitest';

interface Lock {
  packages: Record<string, { version?: string; engines?: { node?: string } | string[] }>;
}

const read = async <T>(file: string): Promise<T> =>
  JSON.parse(await readFile(new URL(`../../${file}`, import.meta.url), 'utf8')) as T;

test('every locked package supports every Node version package.json allows (Node 20 and 22)', async () => {
  const pkg = await read<{ engines: { node: string } }>('package.json');
  const lock = await read<Lock>('package-lock.json');
  const ours = pkg.engines.node;
  expect(semver.satisfies('20.19.0', ours) && semver.satisfies('22.13.0', ours), ours).toBe(true);
  const narrower: string[] = [];
  for (const [where, entry] of Object.entries(lock.packages)) {
    const engines = entry.engines;
    const node = engines !== undefined && !Array.isArray(engines) ? engines.node : undefined;
    if (where === '' || node === undefined) continue;
    if (!semver.subset(ours, node, { includePrerelease: false }))
      narrower.push(
        `${where.replace(/^.*node_modules\//, '')}@${entry.version ?? '?'} requires node ${node}`,
      );
  }
  expect(narrower, `package.json allows node ${ours}`).toEqual([]);
});
