/** Where a run writes its log lines: the Functions InvocationContext in Azure, stderr in the CLI, a list in tests. */
export type LogFn = (level: 'info' | 'warn' | 'error', message: string) => void;
