/**
 * Preloaded (`node --import dist/bench/usageHook.js …`) into a process the benchmark measures as a whole, such as
 * the production CLI's replay: at exit it writes the process's own wall time since it started, CPU time (user,
 * system) and peak RSS as JSON to the file named by BENCH_USAGE_FILE. It changes nothing else in the process.
 */
import { writeFileSync } from 'node:fs';

const file = process.env.BENCH_USAGE_FILE;
if (file !== undefined && file !== '') {
  process.on('exit', () => {
    const cpu = process.cpuUsage();
    writeFileSync(
      file,
      JSON.stringify({
        // performance.now() counts from the process's time origin (its start).
        wallMs: performance.now(),
        cpuUserMs: cpu.user / 1000,
        cpuSystemMs: cpu.system / 1000,
        peakRssMb: process.resourceUsage().maxRSS / 1024,
      }),
    );
  });
}
