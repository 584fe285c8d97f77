import type { CallerType } from '../activity/types.js';
import type { ShardShare } from './shard.js';

/**
 * Events of one (operation, caller IP, caller, hour), aggregated: what the pipeline needs, and what the
 * Log Analytics query returns so that millions of rows become thousands. Lists are bounded.
 */
export interface EventGroup {
  operation: string;
  operationKey: string;
  caller: string;
  callerType: CallerType;
  callerIp: string;
  hourMs: number;
  count: number;
  firstMs: number;
  lastMs: number;
  resourceIds: string[];
  correlationIds: string[];
  subscriptionId: string;
  resourceGroup: string;
  /**
   * Start of the sub-hour slot the events fall in, when the source was asked to split hours into slots (the
   * backtest's download of a period); absent: the whole hour. Runs never need it.
   */
  slotMs?: number;
}

/** Where a run's events come from: the Log Analytics workspace in Azure, files in `replay`. */
export interface EventSource {
  /**
   * Event groups with events in [startMs, endMs). With `shard`, a source may leave out the groups of
   * operations other shards own (Log Analytics filters them in the query, so a shard downloads its share);
   * callers still filter, so a source may ignore it.
   */
  read(startMs: number, endMs: number, shard?: ShardShare): Promise<EventGroup[]>;
}

export const MAX_GROUP_LIST = 20;
