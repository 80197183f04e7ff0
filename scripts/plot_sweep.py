#!/usr/bin/env python3
"""Plots a bla-sweep results.csv: accuracy against state size.

    scripts/plot_sweep.py runs/sweeps/mqar_cpu/results.csv --out docs/img/mqar_cpu

One PNG per setting (task and every swept data.* key, e.g. data.num_kv_pairs),
x = total state numbers of the model (summary.json "state"/"total_numel",
log scale), y = the test metric, one line per group label (a mixer, or a
variant such as multi-resolution BLA). Seeds (run.seed) are averaged first;
then, of the points of one group at one state size (different train.lr, or
other swept keys that leave the state alone), one is kept and its learning
rate shown: the best on the validation split when the CSV has the metric's
validation column (validation_accuracy for test_accuracy: runs with
data.validation_examples), else the best on the plotted metric itself,
which the output then says is a choice on the test set. Prints the table
behind each plot as markdown. Needs matplotlib only for the PNGs (--no-plot
prints the tables without it).
"""
import argparse
import csv
import math
import os
import sys
from collections import defaultdict

LR_KEY = "train.lr"
SEED_KEY = "run.seed"
# Columns and lines in this order (then any other group, as the CSV has them),
# so that tables and colours do not depend on the order of a sweep's groups.
GROUP_ORDER = ["bla", "swa", "attention", "gla", "gsa", "mamba2", "multires", "swa_bla"]


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def facet_keys(rows):
    """Columns that split the sweep into separate plots: task and swept data.* keys."""
    keys = ["task"]
    for key in rows[0].keys() if rows else []:
        if key.startswith("data.") and len({r[key] for r in rows}) > 1:
            keys.append(key)
    return keys


def axis_columns(rows):
    """The point's override columns: bla-sweep writes them between exit_code and task."""
    header = list(rows[0].keys())
    return header[header.index("exit_code") + 1 : header.index("task")]


def selection_column(rows, metric):
    """The column the learning rate is chosen on: the metric's validation column when the CSV has one."""
    base = metric[len("test_"):] if metric.startswith("test_") else None
    if base and "validation_" + base in rows[0] and any(number(r.get("validation_" + base)) is not None for r in rows):
        return "validation_" + base
    return metric


def best_points(rows, metric, select=None):
    """{facet: {group: {state: (value, lr, seeds)}}}: seeds averaged; of the configs at one state, the one best
    on `select` (default `metric`) is kept, and its `metric` reported."""
    select = select or metric
    facets = facet_keys(rows)
    others = [k for k in axis_columns(rows) if k not in facets and k != SEED_KEY]
    by_config = defaultdict(list)  # (facet, group, state, config) -> (value, selection value) over seeds
    for r in rows:
        value, chosen_on, state = number(r.get(metric)), number(r.get(select)), number(r.get("state_total"))
        if r.get("status") != "done" or value is None or chosen_on is None or state is None:
            continue
        facet = tuple((k, r.get(k, "")) for k in facets)
        config = tuple(r.get(k, "") for k in others)
        by_config[(facet, r["group"], state, config)].append((value, chosen_on))
    lower_is_better = select.endswith("loss") or select.endswith("tvd")
    lr_index = others.index(LR_KEY) if LR_KEY in others else None
    table = defaultdict(lambda: defaultdict(dict))
    chosen = {}
    for (facet, group, state, config), pairs in by_config.items():
        mean = sum(v for v, _ in pairs) / len(pairs)
        score = sum(c for _, c in pairs) / len(pairs)
        lr = config[lr_index] if lr_index is not None else ""
        key = (facet, group, state)
        if key not in chosen or (score < chosen[key] if lower_is_better else score > chosen[key]):
            chosen[key] = score
            table[facet][group][state] = (mean, lr, len(pairs))
    return table


def ordered(groups):
    rank = {g: i for i, g in enumerate(GROUP_ORDER)}
    return {g: groups[g] for g in sorted(groups, key=lambda g: rank.get(g, len(GROUP_ORDER)))}


def facet_title(facet):
    return ", ".join(f"{k.replace('data.', '')} {v}" for k, v in facet if v)


def facet_file(facet):
    text = "_".join(f"{k.replace('data.', '')}-{v}" for k, v in facet if v) or "sweep"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def markdown(groups, metric):
    states = sorted({s for points in groups.values() for s in points})
    names = list(groups)
    lines = ["| state (numbers) | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for s in states:
        cells = []
        for g in names:
            if s in groups[g]:
                value, lr, seeds = groups[g][s]
                cell = f"{value:.3f}"
                if lr:
                    cell += f" (lr {lr})"
                if seeds > 1:
                    cell += f" [{seeds} seeds]"
                cells.append(cell)
            else:
                cells.append("")
        lines.append(f"| {int(s):,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(groups, metric, title, path):
    try:
        import matplotlib
    except ImportError:
        sys.exit(f"plot_sweep: matplotlib is missing for {sys.executable}: apt-get install python3-matplotlib "
                 "(then run /usr/bin/python3 scripts/plot_sweep.py ...) or pip install matplotlib; "
                 "--no-plot prints the tables without it")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for group, points in groups.items():
        states = sorted(points)
        values = [points[s][0] for s in states]
        # A known group keeps its colour from plot to plot (C0 bla, C1 swa, ...).
        color = f"C{GROUP_ORDER.index(group) % 10}" if group in GROUP_ORDER else None
        ax.plot(states, values, marker="o", label=group, color=color)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("state (numbers kept to decode, all layers, batch 1)")
    ax.set_ylabel(f"test {metric.replace('test_', '')} (lr chosen as printed)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", help="results.csv written by bla-sweep")
    parser.add_argument("--out", default=None, help="folder for the PNGs (default: beside the CSV)")
    parser.add_argument("--metric", default="test_accuracy", help="CSV column to plot (default test_accuracy)")
    parser.add_argument("--no-plot", action="store_true", help="print the tables only")
    args = parser.parse_args()

    rows = read_rows(args.csv)
    if not rows:
        sys.exit(f"plot_sweep: {args.csv} has no rows")
    if args.metric not in rows[0]:
        metrics = [k for k in rows[0] if k.startswith("test_")]
        sys.exit(f"plot_sweep: {args.csv} has no column '{args.metric}'; its metrics: {', '.join(metrics)}")
    not_done = [r["name"] for r in rows if r.get("status") != "done"]
    if not_done:
        print(f"(left out, not done: {', '.join(not_done)})\n")
    out = args.out or os.path.dirname(os.path.abspath(args.csv))
    select = selection_column(rows, args.metric)
    if select == args.metric:
        print(f"(learning rate chosen on {args.metric} itself: the CSV has no validation column, so this is a choice "
              "on the test set; set data.validation_examples in the sweep)\n")
    else:
        print(f"(learning rate chosen on {select}; {args.metric} reported)\n")
    table = best_points(rows, args.metric, select)
    for facet, groups in sorted(table.items()):
        groups = ordered(groups)
        title = facet_title(facet)
        print(f"### {title}\n")
        print(markdown(groups, args.metric) + "\n")
        if not args.no_plot:
            os.makedirs(out, exist_ok=True)
            path = os.path.join(out, facet_file(facet) + ".png")
            plot(groups, args.metric, title, path)
            print(f"({path})\n")


if __name__ == "__main__":
    main()
