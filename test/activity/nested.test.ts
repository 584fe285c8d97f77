/**
 * Issue 14, point 4: readers cap a record's JSON nesting (64) and size (INPUT_BUDGETS). A 48 MB record nested
 * millions deep once took the CLI to 3 GB and a V8 out-of-memory; now it is skipped and counted like any other
 * malformed record, with its position, and the records around it are read — in a child process with a 256 MB heap.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { toDiagnosticRecord } from '../../shared/activity/formats.js';
import { newReadStats, readActivityFile } from '../../shared/activity/read.js';
import { INPUT_BUDGETS } from '../../shared/config/budgets.js';
import { runTsChild, sourceUrl } from '../baseline/childProcess.js';
import { makeEvents, useTempDir } from './helpers.js';

const inTempDir = useTempDir();
const MB = 1024 * 1024;

/** Writes `{"records":[good, {"identity":{"claims":[[[…]]]}}, good]}` with `depth` nested arrays. */
async function writeNested(path: string, depth: number): Promise<void> {
  const [a, b] = makeEvents(2).map((e) => JSON.stringify(toDiagnosticRecord(e)));
  const out = createWriteStream(path);
  const write = async (s: string) => {
    if (!out.write(s)) await once(out, 'drain');
  };
  await write(`{"records":[${a},{"identity":{"claims":`);
  for (let left = depth; left > 0; left -= MB) await write('['.repeat(Math.min(MB, left)));
  for (let left = depth; left > 0; left -= MB) await write(']'.repeat(Math.min(MB, left)));
  await write(`}},${b}]}\n`);
  out.end();
  await once(out, 'finish');
}

const CHILD = `
import { newReadStats, readActivityFile } from ${JSON.stringify(sourceUrl('shared/activity/read.ts'))};
const stats = newReadStats();
let events = 0;
for await (const _ of readActivityFile(process.argv[2], stats)) events++;
console.log(JSON.stringify({ events, stats }));
`;

describe('hostile nesting and sizes', () => {
  it('a 48 MB record nested 24 million deep is skipped with its position, in a 256 MB heap', async () => {
    const path = inTempDir('nested.json');
    await writeNested(path, 24 * MB);
    const child = runTsChild(CHILD, [path], ['--max-old-space-size=256']);
    const { code, stderr } = await child.exited;
    expect(stderr).not.toMatch(/heap out of memory/);
    expect(code).toBe(0);
    const { events, stats } = JSON.parse(child.lines[0]!) as {
      events: number;
      stats: ReturnType<typeof newReadStats>;
    };
    expect(events).toBe(2);
    expect(stats).toMatchObject({ records: 3, events: 2, skipped: { 'invalid-json': 1 } });
    expect(stats.skippedSamples[0]).toMatchObject({
      position: 'records[1]',
      reason: 'invalid-json',
      detail: `nesting deeper than ${INPUT_BUDGETS.jsonDepth}`,
    });
  }, 180_000);

  it('JSON Lines: a line nested deeper than 64 and a line over the record budget are skipped, the rest read', async () => {
    const [a, b] = makeEvents(2).map((e) => JSON.stringify(toDiagnosticRecord(e)));
    const path = inTempDir('nested.jsonl');
    const deep = `{"claims":${'['.repeat(65)}${']'.repeat(65)}}`;
    const shallow = `{"claims":${'['.repeat(60)}${']'.repeat(60)},"x":"${'[{'.repeat(100)}"}`;
    const big = `{"claims":"${'x'.repeat(2 * INPUT_BUDGETS.recordBytes)}"}`;
    const out = createWriteStream(path);
    out.end([a, deep, shallow, big, b].join('\n') + '\n');
    await once(out, 'finish');
    const stats = newReadStats();
    const read = [];
    for await (const ev of readActivityFile(path, stats)) read.push(ev);
    expect(read).toHaveLength(2);
    // The shallow line (brackets inside a string do not count) is read and fails later for other reasons.
    expect(stats.skippedSamples.map((s) => [s.position, s.detail ?? ''])).toEqual([
      ['2', `nesting deeper than ${INPUT_BUDGETS.jsonDepth}`],
      ['3', expect.not.stringMatching(/nesting/) as string],
      ['4', `line longer than ${INPUT_BUDGETS.recordBytes} bytes`],
    ]);
  });
});
