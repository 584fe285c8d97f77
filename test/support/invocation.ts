/**
 * What the Functions host hands a handler: the timer trigger's argument and an InvocationContext whose log lines
 * a test can read.
 */
import { InvocationContext, type LogLevel, type Timer } from '@azure/functions';

/** A timer trigger's argument: no schedule status unless `overrides` gives one (e.g. a weekly schedule's). */
export function timer(isPastDue = false, overrides: Partial<Omit<Timer, 'isPastDue'>> = {}): Timer {
  return {
    isPastDue,
    schedule: { adjustForDST: false },
    scheduleStatus: { last: '', next: '', lastUpdated: '' },
    ...overrides,
  };
}

/**
 * An InvocationContext whose log calls go to `log`: pushed as `level: text` lines onto an array, or passed to a
 * function as level and text (the arguments joined by spaces).
 */
export function invocationContext(
  functionName: string,
  invocationId: string,
  log: string[] | ((level: LogLevel, text: string) => void),
): InvocationContext {
  const write = Array.isArray(log) ? (level: LogLevel, text: string) => log.push(`${level}: ${text}`) : log;
  return new InvocationContext({
    invocationId,
    functionName,
    logHandler: (level, ...args) => write(level, args.map(String).join(' ')),
  });
}
