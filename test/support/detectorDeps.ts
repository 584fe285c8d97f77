/** Pieces of in-process detector dependencies (DetectorDeps) that tests build the same way. */
import type { MemoryAlertSink } from '../../shared/alerts/sinks.js';
import type { Geolocator } from '../../shared/geo/types.js';
import type { DetectorDeps } from '../../shared/runtime/detector.js';

/** The GeoIP database provider serving `geo` as the embedded database (built 2019-12-24), `ageDays` old. */
export function embeddedGeo(geo: Geolocator, age: { ageDays: number; stale: boolean }): DetectorDeps['geo'] {
  return {
    current: () =>
      Promise.resolve({
        geo,
        source: 'embedded',
        buildDate: new Date('2019-12-24'),
        ageDays: age.ageDays,
        stale: age.stale,
      }),
  };
}

/** `sink` as the outbox: what is written is there at once, and nothing is ever pending. */
export function memoryOutbox(sink: MemoryAlertSink): DetectorDeps['outbox'] {
  return Object.assign(sink, { countPending: () => Promise.resolve(0) });
}
