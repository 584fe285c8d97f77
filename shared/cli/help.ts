/** Per-command help of replay, evaluate and demo (`unusual-city <command> --help`), with examples. */

export const REPLAY_HELP = `Usage: unusual-city replay <file>... --out alerts.jsonl [--state DIR] [--append] [--tick 15m] [--lookback 2h]
                           [--from ISO] [--to ISO] [--set NAME=VALUE]... [--verdicts FILE] [--reorder 1h]
                           [--quiet]

Runs the production pipeline over exported Activity Logs (AzureActivity JSON Lines, Log Analytics query
responses, portal CSV, diagnostic-settings records; gzip or not) as the timer would have, and writes the alerts
as JSON Lines to --out.

  --out FILE      alerts file; never one of the inputs. An existing file holding alerts needs --append, or the
                  --state of the run that wrote it (resume).
  --append        add this run's alerts to an existing --out (alerts already there are not written again)
  --state DIR     keep baselines and the checkpoint in DIR/state.sqlite: a stopped replay (Ctrl-C, kill -9)
                  resumes when started again with the same arguments; other settings than its first
                  replay's are refused (its baselines belong to those)
  --from, --to    only the runs inside this window raise alerts; the runs start from empty baselines unless
                  --state holds history: bootstrap --from-files <file>... --to <from> --state DIR first
  --tick, --lookback, --set NAME=VALUE   settings (as the app settings of the same name; see README)
  --verdicts FILE analysts' verdicts (JSON Lines, docs/operations.md), each applied by the first run at or after
                  its closedTime, as the timer applies Sentinel's
  --reorder D     how far out of time order events may arrive (default: 1h for one file; all for several,
                  which may each cover the same time): the runs follow the reading, a run once the events are D
                  past its tick, so memory holds the lookback window and D, not the input. An event later than
                  that is counted only by the runs after it (the summary says how many, and the --reorder that
                  replays them in order); all: read everything first, any order. Files given in time order
                  (day1 day2 …) stream with --reorder 1h
  --quiet         no progress (warnings still print)

Examples:
  unusual-city replay export.jsonl.gz --out alerts.jsonl
  unusual-city replay a.csv b.jsonl --out alerts.jsonl --state .data/state --set UC_ALERT_THRESHOLD=60
  unusual-city bootstrap --from-files export.jsonl --to 2026-11-01T00:00:00Z --state .data/s
  unusual-city replay export.jsonl --from 2026-11-01T00:00:00Z --state .data/s --out nov.jsonl
`;

export const EVALUATE_HELP = `Usage: unusual-city evaluate <file>... --labels labels.json [replay options]
       unusual-city evaluate --labels labels.json --alerts alerts.jsonl
       unusual-city evaluate --suite [--seeds 1,2,3] [--days 28] [--set NAME=VALUE]... [--json] [--out DIR]
                                 [--verdicts FILE] [--analyst-hours N]

Replays a labelled data set (or reads the alerts file of an earlier replay --out or backtest --alerts with
--alerts FILE; --alerts always names a .jsonl file of alerts, as in backtest) and prints the
attacks detected, false alerts per day and time to detect. labels.json:
{"start","end","attacks":[{"id","caller","ips","start","end"}]} (demo --out writes one). With classes in the
labels (\`class\` on attacks, a \`benign\` array), also the per-class table.

--suite generates the labelled scenario suite (one tenant per seed: ~36 people in London, Amsterdam, Mumbai and
New York, automation in Azure regions, benign novelties and one attack of each class), replays each with the
production pipeline and prints per seed and in total: attacks detected per class, time to detect (median, max;
from the attacker's first event), false alerts per benign class and per day. --json prints the same as JSON on
stdout. --out DIR keeps each seed's data set: activity-seed-N.jsonl, labels-seed-N.json and alerts-seed-N.jsonl.
--analyst-hours N also replays each seed with a simulated analyst who closes every alert N hours after it
(attack: TruePositive, benign label: BenignPositive, else FalsePositive) and prints false alerts per day overall
and from day 8, without and with the analyst. --verdicts FILE applies analysts' verdicts (replay's option).

Examples:
  unusual-city evaluate .data/demo/activity.jsonl --labels .data/demo/labels.json
  unusual-city evaluate --labels labels.json --alerts alerts.jsonl
  unusual-city evaluate --suite
  unusual-city evaluate --suite --seeds 4,5 --days 21 --set UC_ALERT_THRESHOLD=45
  unusual-city evaluate --suite --analyst-hours 8
`;

export const DEMO_HELP = `Usage: unusual-city demo [--out DIR] [--days N] [--set NAME=VALUE]... [--quiet]

Generates a deterministic tenant with labelled attacks (activity, labels and alerts in --out, default
.data/demo), replays it through the detector and prints explained alerts and the evaluation.

Examples:
  unusual-city demo
  unusual-city demo --days 60 --out /tmp/demo --set UC_ALERT_THRESHOLD=50
`;

export const HELP: Record<string, string> = {
  replay: REPLAY_HELP,
  evaluate: EVALUATE_HELP,
  demo: DEMO_HELP,
};
