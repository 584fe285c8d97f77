import { describe, expect, it } from 'vitest';

import { haversineKm } from '../../shared/geo/distance.js';

describe('haversineKm', () => {
  it('measures London – Paris as about 344 km', () => {
    expect(haversineKm(51.5074, -0.1278, 48.8566, 2.3522)).toBeCloseTo(343.6, 0);
  });

  it('is symmetric and zero for the same point', () => {
    expect(haversineKm(59.2, 17.8167, 59.2, 17.8167)).toBe(0);
    expect(haversineKm(47.7438, -122.6265, 52.1398, -0.2399)).toBeCloseTo(
      haversineKm(52.1398, -0.2399, 47.7438, -122.6265),
      9,
    );
  });

  it('handles the antimeridian, the poles and antipodes', () => {
    // 1° of longitude on the equator, across ±180°.
    expect(haversineKm(0, 179.5, 0, -179.5)).toBeCloseTo(111.2, 1);
    // Pole to pole is half the circumference.
    expect(haversineKm(90, 0, -90, 0)).toBeCloseTo(Math.PI * 6371.0088, 6);
    expect(haversineKm(0, 0, 0, 180)).toBeCloseTo(Math.PI * 6371.0088, 6);
  });

  it('measures Sydney – New York as about 15 990 km', () => {
    expect(haversineKm(-33.8688, 151.2093, 40.7128, -74.006)).toBeGreaterThan(15_950);
    expect(haversineKm(-33.8688, 151.2093, 40.7128, -74.006)).toBeLessThan(16_050);
  });
});
