#!/usr/bin/env python3
"""Sum Nsight Compute's per-launch kernel times by kernel.

    ncu --clock-control none --metrics gpu__time_duration.sum --csv --log-file k.csv PROGRAM ...
    scripts/ncu_kernel_times.py k.csv [--per N]

Prints one line per kernel (launches, total and mean microseconds), largest
first, and the total; --per N divides counts and totals by N (the number of
identical iterations the program ran). With --stalls, for a run that
collected smsp__average_warps_issue_stalled_*_per_issue_active.ratio, prints
instead each kernel's cycles stalled per issued instruction by reason
(largest first; the first launch of each kernel). With --steps-by REGEX, the launches are cut
into training steps at the kernels matching REGEX (the optimizer's, which end
each step: e.g. 'Adam'), the first --skip-steps steps and everything after
the last step are left out, and the totals are per step.
"""
import argparse
import collections
import csv
import re
import sys


def short_name(name: str) -> str:
    """Kernel name without namespaces, anonymous-namespace tags and arguments."""
    name = re.sub(r"\(anonymous namespace\)::", "", name)
    name = re.sub(r"\((?:[^()]|\([^()]*\))*\)\s*$", "", name)  # trailing argument list
    head, _, rest = name.partition("<")
    head = head.split("::")[-1]
    return head + ("<" + rest if rest else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--per", type=int, default=1)
    parser.add_argument("--stalls", action="store_true")
    parser.add_argument("--steps-by", default="", help="regex of the kernels that end each step")
    parser.add_argument("--skip-steps", type=int, default=1)
    args = parser.parse_args()
    with open(args.csv, newline="") as f:
        lines = [line for line in f if line.startswith('"')]
    rows = list(csv.DictReader(lines))
    if not rows:
        print(f"{args.csv}: no kernel rows (did ncu run?)", file=sys.stderr)
        return 1
    if args.stalls:
        return print_stalls(rows)
    rows = [row for row in rows if row.get("Metric Name") == "gpu__time_duration.sum"]
    per = max(args.per, 1)
    if args.steps_by:
        rows, per = step_rows(rows, re.compile(args.steps_by), args.skip_steps)
    total = collections.Counter()
    count = collections.Counter()
    for row in rows:
        value = float(row["Metric Value"].replace(",", ""))
        unit = row.get("Metric Unit", "nsecond")
        micros = value / 1000.0 if unit in ("nsecond", "ns") else value * 1000.0 if unit in ("msecond", "ms") else value
        name = short_name(row["Kernel Name"])[:110]
        total[name] += micros
        count[name] += 1
    all_micros = sum(total.values())
    print(f"{'launches':>8} {'total us':>10} {'mean us':>9} {'share':>6}  kernel (per {per} iteration(s))")
    for name, micros in total.most_common():
        print(f"{count[name] / per:8.1f} {micros / per:10.1f} {micros / count[name]:9.1f} {100 * micros / all_micros:5.1f}%  {name}")
    print(f"{sum(count.values()) / per:8.1f} {all_micros / per:10.1f} {'':9}         all kernels")
    return 0


def step_rows(rows, marker, skip):
    """The launches of whole steps after the first `skip`: a step ends with its
    last run of marker kernels (marker launches at most 2 launches apart count as one run)."""
    rows = sorted(rows, key=lambda r: int(r["ID"]))
    hits = [i for i, r in enumerate(rows) if marker.search(r["Kernel Name"])]
    ends = []
    for i in hits:
        if ends and i - ends[-1] <= 3:
            ends[-1] = i
        else:
            ends.append(i)
    if len(ends) <= skip:
        raise SystemExit(f"only {len(ends)} steps found by {marker.pattern!r}, {skip} to skip")
    print(f"{len(ends)} steps found; per step over steps {skip + 1}..{len(ends)}")
    return rows[ends[skip - 1] + 1 if skip > 0 else 0: ends[-1] + 1], len(ends) - skip


def print_stalls(rows) -> int:
    prefix, suffix = "smsp__average_warps_issue_stalled_", "_per_issue_active.ratio"
    by_kernel = {}
    for row in rows:
        metric = row.get("Metric Name", "")
        if not (metric.startswith(prefix) and metric.endswith(suffix)):
            continue
        name = short_name(row["Kernel Name"])[:90]
        launch = by_kernel.setdefault(name, (row["ID"], {}))
        if launch[0] != row["ID"]:
            continue  # a later launch of the same kernel
        launch[1][metric[len(prefix):-len(suffix)]] = float(row["Metric Value"].replace(",", ""))
    for name, (_, reasons) in by_kernel.items():
        top = sorted(reasons.items(), key=lambda kv: -kv[1])
        print(f"{name}: {sum(reasons.values()):.2f} cycles per issued instruction")
        print("    " + ", ".join(f"{reason} {value:.2f}" for reason, value in top if value >= 0.05))
    return 0


if __name__ == "__main__":
    sys.exit(main())
