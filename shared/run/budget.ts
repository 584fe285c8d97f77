import type { Clock } from './clock.js';

/**
 * The time a run may spend: retries, backoff and catch-up stop when it runs out, so a run ends cleanly
 * (checkpoint where it was) before the Functions host kills it at functionTimeout.
 */
export class RunBudget {
  readonly deadlineMs: number;
  constructor(
    budgetMs: number,
    private readonly clock: Clock = Date.now,
  ) {
    this.deadlineMs = clock() + budgetMs;
  }
  now(): number {
    return this.clock();
  }
  remainingMs(): number {
    return Math.max(0, this.deadlineMs - this.clock());
  }
  expired(): boolean {
    return this.remainingMs() <= 0;
  }
}

/** Raised when a run stops because its budget is spent; the checkpoint stays where it was. */
export class BudgetExceededError extends Error {
  constructor(what: string) {
    super(`Run budget (UC_RUN_BUDGET) spent while ${what}; the next run continues from the checkpoint`);
    this.name = 'BudgetExceededError';
  }
}

/** Sleeps, but never past the budget (resolves false when the budget would be exceeded). */
export async function sleepWithin(budget: RunBudget, ms: number): Promise<boolean> {
  if (ms >= budget.remainingMs()) return false;
  await new Promise((r) => setTimeout(r, ms));
  return true;
}
