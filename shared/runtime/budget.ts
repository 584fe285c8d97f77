// The run budget lives in the leaf module shared/run/budget.ts (low floors use it too); re-exported for the
// code that imports it from here.
export { BudgetExceededError, RunBudget, sleepWithin } from '../run/budget.js';
