/** One line of `unusual-city doctor`: what was checked, what was found, and — when it failed — what to do. */
export interface Check {
  name: string;
  ok: boolean;
  /** What was found. */
  detail: string;
  /** What to do, for a failed check. */
  fix?: string;
}

/** The first line of an error's message. */
export const why = (e: unknown): string => (e instanceof Error ? e.message.split('\n')[0]! : String(e));
