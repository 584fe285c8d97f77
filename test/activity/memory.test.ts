import { stat } from 'node:fs/promises';

import { describe, expect, it } from 'vitest';

import { writeJsonLines } from '../../shared/activity/formats.js';
import { newReadStats, readActivityFile } from '../../shared/activity/read.js';
import { generateEvents, useTempDir } from './helpers.js';

const EVENTS = 75_000; // ≈ 150 MB of AzureActivity JSON Lines
const MB = 1024 * 1024;

const inTempDir = useTempDir();

describe('streaming', () => {
  it('reads a ~150 MB JSON Lines file with bounded memory', async () => {
    const path = inTempDir('big.jsonl');
    // The writer streams too: the generator is consumed lazily, nothing is materialised.
    expect(await writeJsonLines(generateEvents(EVENTS), path)).toBe(EVENTS);
    const size = (await stat(path)).size;
    expect(size).toBeGreaterThan(120 * MB);

    const stats = newReadStats();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    let n = 0;
    let lastTime = 0;
    for await (const ev of readActivityFile(path, stats)) {
      lastTime = ev.timeMs;
      if (++n % 2000 === 0) peak = Math.max(peak, process.memoryUsage().rss);
    }
    peak = Math.max(peak, process.memoryUsage().rss);

    expect(n).toBe(EVENTS);
    expect(lastTime).toBeGreaterThan(0);
    expect(stats).toMatchObject({ records: EVENTS, events: EVENTS, skipped: {} });
    const growthMb = (peak - baseline) / MB;
    // Reading the file whole would add at least its own size (buffer + string) on top of this.
    expect(growthMb).toBeLessThan(150);
    expect(growthMb).toBeLessThan(size / MB);
  });
});
