/**
 * An approximately-least-recently-used cache made of two generations (the scheme of the `quick-lru`
 * package). New and re-used entries go into `young`; when `young` is full it becomes `old` and the previous
 * `old` is dropped wholesale. A hit in `young` is a single Map lookup.
 *
 * Why not an exact LRU on one Map (delete + re-insert on every hit): V8 leaves a hole for each delete and
 * compacts the whole table every few hundred of them, so with 100 000 entries and a few busy IPs hits ran
 * at ~300 000/s instead of millions. Why LRU-ish at all rather than clear-when-full: activity logs are
 * dominated by a few busy IPs that must stay hot while one-off addresses stream past.
 *
 * Guarantees: at most `capacity` entries; an entry used within the last ⌈capacity/2⌉ insertions is kept.
 */
export class LruCache<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  private readonly generationSize: number;

  /** `capacity` 0 disables caching. */
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 0) {
      throw new Error(`cache size must be a whole number ≥ 0, got ${capacity}`);
    }
    this.generationSize = Math.ceil(capacity / 2);
  }

  /** Entries currently held (may count a key twice for a moment; never more than capacity). */
  get size(): number {
    return this.young.size + this.old.size;
  }

  get(key: K): V | undefined {
    const value = this.young.get(key);
    if (value !== undefined) return value;
    const aged = this.old.get(key);
    if (aged !== undefined) {
      // Promote so a busy key never ages out; deleting from `old` keeps the capacity bound exact.
      this.old.delete(key);
      this.insert(key, aged);
    }
    return aged;
  }

  set(key: K, value: V): void {
    if (this.capacity === 0) return;
    if (this.young.has(key)) {
      this.young.set(key, value);
      return;
    }
    this.old.delete(key);
    this.insert(key, value);
  }

  private insert(key: K, value: V): void {
    this.young.set(key, value);
    if (this.young.size >= this.generationSize) {
      this.old = this.young;
      this.young = new Map();
    }
  }
}
