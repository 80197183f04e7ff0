#!/usr/bin/env python3
"""Plots a bla-sweep results.csv: accuracy against state size.

    scripts/plot_sweep.py runs/sweeps/mqar_cpu/results.csv --out docs/img/mqar_cpu
    scripts/plot_sweep.py results.csv --no-plot --thresholds 0.9,0.99 --ratio swa/bla

One PNG per setting (task and every swept data.* key, e.g. data.num_kv_pairs),
x = total state numbers of the model (summary.json "state"/"total_numel",
log scale), y = the test metric, one line per group label (a mixer, or a
variant such as multi-resolution BLA). Seeds (run.seed) are averaged first;
then, of the points of one group at one state size (different train.lr, or
other swept keys that leave the state alone), one is kept and its learning
rate shown: the best mean over the seeds every rate of that state has (all
of them in a full grid; the first seeds after a sweep file's `select`, where
the other seeds ran at the chosen rate only: bla-sweep's choice), on the
validation split when the CSV has the metric's
validation column (validation_accuracy for test_accuracy: runs with
data.validation_examples), else the best on the plotted metric itself,
which the output then says is a choice on the test set. Prints the table
behind each plot as markdown: a point is the mean over seeds, with 2 or more
seeds its 95% bootstrap interval over seeds (the error bars of the plot), then
the learning rate and the number of seeds: 0.912 [0.880, 0.951] (lr 1e-3, 3
seeds); with one seed 0.950 (lr 3e-3).

When higher is better (not for *loss, *tvd or *tvd_seq_icl), a headline table follows: for
each --thresholds value and group, the crossing state, defined as the smallest
state whose mean over seeds is >= the threshold (the curve is not assumed
monotone; "not reached" when no state is), and the ratio of two groups'
crossing states (--ratio swa/bla: the state swa needs over the state bla
needs, i.e. bla needs that many times less state; "> x" when swa does not
reach the threshold: its largest state over bla's crossing, "< x" when bla
does not). A crossing at a group's smallest state reads "<= N": nothing below
it ran, so it may cross lower, and a ratio with it is a bound (">= x" when
the denominator's is, "<= x" when the numerator's is). Intervals are the 2.5% and 97.5% percentiles (nearest rank) of
--bootstrap replicates: each replicate resamples the seeds of every (group,
state) point with replacement, independently per point, recomputes the means
and finds the crossing states and their ratio in it. A replicate that does
not cross counts as +infinity: "> N" (not reached up to the group's largest
state N) in a state's interval, inf (0 when bla is the one) in a ratio's, whose
interval leaves out, and counts, the replicates where neither group crosses.
The table's intervals come from the same replicates. Each point's replicates
come from its own generator, seeded by --bootstrap-seed and the point: the
output is deterministic, and a point's interval does not change when a sweep
adds other points. A group whose points all have one seed gets no intervals;
with fewer than 3 seeds anywhere, the output warns that intervals mean little.

A second table gives the same with the crossings interpolated: where the
curve of means, straight between neighbouring states on a log-state axis,
first reaches the threshold, between the grid crossing and the state below
it (the grid's crossing itself where that is the group's smallest state).
On a grid that steps by sqrt(2) the grid crossings and their ratios move in
steps of sqrt(2); the interpolated ones do not. Its intervals come from the
same replicates.

--points adds, under each state table, a table of every point (a
configuration but for its learning rate and seed, e.g. each window of a
group whose windows share one state): the selection column at each rate
tried, on the seeds every rate of that point has, the rate chosen on it (in
bold), and the metric over that rate's seeds: the mean, its interval (from
the state table's replicates where a state holds one point) and each seed's
value, or the one seed's.

--reference FILE adds reference lines from a JSON file of bla-baseline's
form ({"split": "test", "predictors": {name: {metric: value}}}, e.g.
RegBench's in-context n-gram predictors): printed under every table, with
the thresholds of the headline each one reaches, and drawn as dashed
horizontal lines named in the legend. The plotted metric test_X reads X of
each predictor; the file must be on the test split.

Needs matplotlib only for the PNGs (--no-plot prints the tables without it).
"""
import argparse
import csv
import json
import math
import os
import random
import sys
from collections import defaultdict

LR_KEY = "train.lr"
SEED_KEY = "run.seed"
# Columns and lines in this order (then any other group, as the CSV has them),
# so that tables and colours do not depend on the order of a sweep's groups.
GROUP_ORDER = ["bla", "swa", "attention", "gla", "gsa", "mamba2", "multires", "swa_bla"]
INTERVAL = (0.025, 0.975)  # percentiles of the bootstrap replicates: a 95% interval


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


def lower_is_better(column):
    return column.endswith("loss") or column.endswith("tvd") or column.endswith("tvd_seq_icl")


def selection_column(rows, metric):
    """The column the learning rate is chosen on: the metric's validation column when the CSV has one."""
    base = metric[len("test_"):] if metric.startswith("test_") else None
    if base and "validation_" + base in rows[0] and any(number(r.get("validation_" + base)) is not None for r in rows):
        return "validation_" + base
    return metric


def best_points(rows, metric, select=None, narrowed=None, edges=None):
    """{facet: {group: {state: (values, lr)}}}: of the configs at one state, the one whose mean of `select`
    (default `metric`) over the seeds every config of that state has is best is kept, with its `metric` value
    of each of its seeds. With a full grid those are all seeds; after a sweep file's `select` (the first seeds
    try every rate, the others run at the chosen one) they are the first seeds, the choice bla-sweep made.
    `narrowed`, a dict, receives {(facet, group, state): those seeds} where they are fewer than a config has;
    `edges`, a dict, receives {(facet, group, state): "largest" or "smallest"} where the chosen learning rate is
    the largest or smallest of two or more rates tried there."""
    select = select or metric
    facets = facet_keys(rows)
    others = [k for k in axis_columns(rows) if k not in facets and k != SEED_KEY]
    by_config = defaultdict(list)  # (facet, group, state, config) -> (seed, value, selection value)
    for r in rows:
        value, chosen_on, state = number(r.get(metric)), number(r.get(select)), number(r.get("state_total"))
        if r.get("status") != "done" or value is None or chosen_on is None or state is None:
            continue
        facet = tuple((k, r.get(k, "")) for k in facets)
        config = tuple(r.get(k, "") for k in others)
        by_config[(facet, r["group"], state, config)].append((r.get(SEED_KEY, ""), value, chosen_on))
    common = {}  # (facet, group, state) -> the seeds every config there has
    for (facet, group, state, _), runs in by_config.items():
        seeds = {seed for seed, _, _ in runs}
        key = (facet, group, state)
        common[key] = common[key] & seeds if key in common else seeds
    if narrowed is not None:
        for (facet, group, state, _), runs in by_config.items():
            key = (facet, group, state)
            if common[key] and common[key] != {seed for seed, _, _ in runs}:
                narrowed[key] = common[key]
    lower = lower_is_better(select)
    lr_index = others.index(LR_KEY) if LR_KEY in others else None
    table = defaultdict(lambda: defaultdict(dict))
    chosen, chosen_lr, tried = {}, {}, defaultdict(set)
    for (facet, group, state, config), runs in by_config.items():
        key = (facet, group, state)
        scored = [c for seed, _, c in runs if seed in common[key]] or [c for _, _, c in runs]
        score = mean(scored)
        lr = config[lr_index] if lr_index is not None else ""
        if number(lr) is not None:
            tried[key].add(number(lr))
        if key not in chosen or (score < chosen[key] if lower else score > chosen[key]):
            chosen[key] = score
            chosen_lr[key] = number(lr)
            table[facet][group][state] = ([v for _, v, _ in runs], lr)
    if edges is not None:
        for key, rates in tried.items():
            if len(rates) > 1 and chosen_lr.get(key) in (max(rates), min(rates)):
                edges[key] = "largest" if chosen_lr[key] == max(rates) else "smallest"
    return table


def mean(values):
    return math.fsum(values) / len(values)


def bootstrap(facet, groups, replicates, seed):
    """{group: {state: [the mean of one resample of the point's seeds, for each replicate]}}. Each point has its
    own generator (a str seed is hashed the same way in every run), so its replicates do not depend on the others."""
    out = {}
    for group, points in groups.items():
        out[group] = {}
        for state, (values, _) in points.items():
            rng = random.Random(repr((seed, facet, group, state)))
            out[group][state] = [mean(rng.choices(values, k=len(values))) for _ in range(replicates)]
    return out


def interval(replicates):
    """The INTERVAL percentiles of the replicates by nearest rank, so always values of replicates (states, not
    states in between); round: q * n is not always exact in floating point."""
    ranked = sorted(replicates)
    return tuple(ranked[max(0, math.ceil(round(q * len(ranked), 6)) - 1)] for q in INTERVAL)


def ordered(groups):
    rank = {g: i for i, g in enumerate(GROUP_ORDER)}
    return {g: groups[g] for g in sorted(groups, key=lambda g: rank.get(g, len(GROUP_ORDER)))}


def facet_title(facet):
    return ", ".join(f"{k.replace('data.', '')} {v}" for k, v in facet if v)


def facet_file(facet):
    text = "_".join(f"{k.replace('data.', '')}-{v}" for k, v in facet if v) or "sweep"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def markdown(groups, boot):
    states = sorted({s for points in groups.values() for s in points})
    names = list(groups)
    lines = ["| state (numbers) | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for s in states:
        cells = []
        for g in names:
            if s in groups[g]:
                values, lr = groups[g][s]
                cell = f"{mean(values):.3f}"
                notes = [f"lr {lr}"] if lr else []
                if len(values) > 1:
                    lo, hi = interval(boot[g][s])
                    cell += f" [{lo:.3f}, {hi:.3f}]"
                    notes.append(f"{len(values)} seeds")
                if notes:
                    cell += f" ({', '.join(notes)})"
                cells.append(cell)
            else:
                cells.append("")
        lines.append(f"| {int(s):,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def point_runs(rows, metric, select):
    """{facet: {group: {point: (state, {lr: [(seed, metric value, select value)]})}}} of the done rows: a point is
    a configuration but for its learning rate and seed, its key the (column, value) pairs of the other swept
    columns; runs in the CSV's order."""
    facets = facet_keys(rows)
    others = [k for k in axis_columns(rows) if k not in facets and k not in (SEED_KEY, LR_KEY)]
    out = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        value, chosen_on, state = number(r.get(metric)), number(r.get(select)), number(r.get("state_total"))
        if r.get("status") != "done" or value is None or chosen_on is None or state is None:
            continue
        facet = tuple((k, r.get(k, "")) for k in facets)
        point = tuple((k, r.get(k, "")) for k in others)
        _, rates = out[facet][r["group"]].setdefault(point, (state, defaultdict(list)))
        rates[r.get(LR_KEY, "")].append((r.get(SEED_KEY, ""), value, chosen_on))
    return out


def seed_order(seed):
    return (len(seed), seed)


def points_markdown(facet, groups, metric, select, replicates, seed):
    """One row per point: the select column at each rate tried on the seeds every rate has (the chosen one in
    bold), the chosen rate, and the metric's mean over that rate's seeds with its bootstrap interval (the same
    replicates as the state table's where a state has one point) and each seed's value."""
    lower = lower_is_better(select)
    lines = [f"| group | point | state (numbers) | {select} at each rate tried (on the seeds every rate has) "
             f"| chosen lr | {metric} at it, mean [95% interval] (each seed) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for group, points in groups.items():
        keys = [k for k, _ in next(iter(points))]
        varying = [k for k in keys if len({dict(p)[k] for p in points}) > 1]

        def order(item):
            point, (state, _) = item
            return (-state, [-(number(dict(point)[k]) or 0) for k in varying])

        for point, (state, rates) in sorted(points.items(), key=order):
            common = set.intersection(*({s for s, _, _ in runs} for runs in rates.values()))
            scores = {}
            for lr, runs in rates.items():
                scored = [c for s, _, c in runs if s in common] or [c for _, _, c in runs]
                scores[lr] = mean(scored)
            best = (min if lower else max)(scores, key=lambda lr: scores[lr])
            tried = " / ".join((f"**{lr}: {scores[lr]:.3f}**" if lr == best else f"{lr}: {scores[lr]:.3f}")
                               for lr in sorted(scores, key=lambda lr: number(lr) or 0))
            runs = rates[best]
            values = [v for _, v, _ in runs]
            each = ", ".join(f"{v:.3f}" for _, v, _ in sorted(runs, key=lambda run: seed_order(run[0])))
            if len(values) > 1:
                rng = random.Random(repr((seed, facet, group, state)))
                lo, hi = interval([mean(rng.choices(values, k=len(values))) for _ in range(replicates)])
                result = f"{mean(values):.3f} [{lo:.3f}, {hi:.3f}] ({each}), {len(values)} seeds"
            else:
                result = f"{values[0]:.3f} (seed {runs[0][0]})"
            label = ", ".join(f"{k.split('.')[-1]} {dict(point)[k]}" for k in varying) or "-"
            lines.append(f"| {group} | {label} | {int(state):,} | {tried} | {best} | {result} |")
    return "\n".join(lines)


def crossing(means, threshold):
    """The smallest state whose mean is >= threshold, math.inf when none is; means is {state: mean}."""
    return min((s for s, m in means.items() if m >= threshold), default=math.inf)


def interpolated_crossing(means, threshold):
    """Where the curve, straight between neighbouring states on a log-state axis, reaches threshold below the
    smallest state whose mean is >= it (crossing): the group's smallest state itself when that is the one,
    math.inf when none is."""
    states = sorted(means)
    for below, state in zip([None] + states, states):
        if means[state] < threshold:
            continue
        if below is None:
            return state
        part = (threshold - means[below]) / (means[state] - means[below])
        return math.exp(math.log(below) + part * (math.log(state) - math.log(below)))
    return math.inf


def state_text(state, smallest):
    """A crossing state; "<= N" at the group's smallest state N (nothing below it ran, so it may cross lower)."""
    return f"<= {int(state):,}" if state == smallest else f"{int(state):,}"


def crossing_cell(point, replicates, smallest, largest, several):
    """A group's crossing state and its interval (over seeds: only when some point of the group has several)."""
    cell = state_text(point, smallest) if point < math.inf else "not reached"
    lo, hi = interval(replicates)
    if several and not lo == hi == point == math.inf and not lo == hi == point == smallest:
        ends = [state_text(e, smallest) if e < math.inf else f"> {int(largest):,}" for e in (lo, hi)]
        cell += f" [{ends[0]}, {ends[1]}]"
    return cell


def ratio_cell(num, den, num_replicates, den_replicates, num_smallest, den_smallest, num_largest, den_largest,
               several):
    """num/den: a bound where one group does not reach the threshold or crosses at its smallest state (">=" when
    den does, "<=" when num does); the interval over the replicates where one reaches it at least (inf where num
    does not, 0 where den does not), and how many replicates neither does."""
    if num < math.inf and den < math.inf:
        low_num, low_den = num == num_smallest, den == den_smallest
        if low_num and low_den:
            return "unknown (both cross at their smallest states)"
        cell = ("<= " if low_num else ">= " if low_den else "") + f"{num / den:.2f}"
    elif den < math.inf:
        cell = f"> {num_largest / den:.2f}"
    elif num < math.inf:
        cell = f"< {num / den_largest:.2f}"
    else:
        cell = "neither reaches it"
    ratios = [n / d for n, d in zip(num_replicates, den_replicates) if not n == d == math.inf]
    if not ratios or not several:
        return cell
    lo, hi = interval(ratios)
    if lo == hi and hi in (0, math.inf):  # the bound above says it
        return cell
    ends = [f"{e:.2f}" if 0 < e < math.inf else ("inf" if e else "0") for e in (lo, hi)]
    cell += f" [{ends[0]}, {ends[1]}]"
    if len(ratios) < len(num_replicates):
        cell += f" ({len(num_replicates) - len(ratios)} of {len(num_replicates)} replicates: neither reaches it)"
    return cell


def headline(groups, boot, metric, thresholds, ratio, replicates, seed, interpolated=False):
    """Markdown: per threshold, each group's crossing state and the ratio of two groups' (see the docstring);
    interpolated: the crossings of interpolated_crossing instead of the grid's."""
    num, den = ratio
    missing = [g for g in ratio if g not in groups]
    several = {g: any(len(v) > 1 for v, _ in points.values()) for g, points in groups.items()}
    largest = {g: max(points) for g, points in groups.items()}
    smallest = {g: min(points) for g, points in groups.items()}
    names = list(groups) + ([] if missing else [f"{num}/{den}"])
    cross = interpolated_crossing if interpolated else crossing
    what = (f"Interpolated: where the curve of mean {metric} over seeds, drawn straight between neighbouring "
            f"states on a log-state axis, first reaches the threshold (between the headline's crossing state and "
            f"the state below it)" if interpolated else
            f"Headline: the smallest state whose mean {metric} over seeds is >= the threshold (the curve is not "
            f"assumed monotone)")
    lines = [what + f", [95% bootstrap interval over seeds, {replicates} replicates, seed {seed}; "
             f"> N: not reached up to the group's largest state N; <= N: reached at the group's smallest state N, "
             f"so it may be reached below it, and a ratio with it is a bound]"
             + ("" if missing else f"; {num}/{den}: the state {num} needs over the state {den} needs "
                                   f"(inf: {num} does not reach it, 0: {den} does not)") + ".",
             "", "| threshold | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for t in thresholds:
        point = {g: cross({s: mean(v) for s, (v, _) in points.items()}, t) for g, points in groups.items()}
        reps = {g: [cross({s: boot[g][s][b] for s in points}, t) for b in range(replicates)]
                for g, points in groups.items()}
        cells = [crossing_cell(point[g], reps[g], smallest[g], largest[g], several[g]) for g in groups]
        if not missing:
            cells.append(ratio_cell(point[num], point[den], reps[num], reps[den], smallest[num], smallest[den],
                                    largest[num], largest[den], several[num] or several[den]))
        lines.append(f"| {t:g} | " + " | ".join(cells) + " |")
    if missing:
        lines += ["", f"(no {num}/{den} ratio: this table has no group {' or '.join(missing)})"]
    few = [f"{g} ({sum(len(v) < 3 for v, _ in points.values())} of {len(points)} states, "
           f"fewest {min(len(v) for v, _ in points.values())})"
           for g, points in groups.items() if any(len(v) < 3 for v, _ in points.values())]
    if few:
        lines += ["", f"(fewer than 3 seeds at the chosen learning rate: {', '.join(few)}; "
                      "intervals over so few seeds mean little)"]
    return "\n".join(lines)


def read_reference(path, metric):
    """{predictor: value of the metric} from a bla-baseline JSON file, in the file's order; exits on a bad file."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as error:
        sys.exit(f"plot_sweep: --reference {path}: {error}")
    predictors = data.get("predictors") if isinstance(data, dict) else None
    if not isinstance(predictors, dict) or not predictors:
        sys.exit(f"plot_sweep: --reference {path} has no 'predictors' object; give a JSON file bla-baseline wrote")
    split = data.get("split")
    if split != "test":
        sys.exit(f"plot_sweep: --reference {path} is on the '{split}' split; the sweep's metric is on the test split: "
                 "run bla-baseline on the test split")
    key = metric[len("test_"):] if metric.startswith("test_") else metric
    values = {}
    for name, scores in predictors.items():
        if not isinstance(scores, dict) or not isinstance(scores.get(key), (int, float)):
            known = ", ".join(sorted(scores)) if isinstance(scores, dict) else "none"
            sys.exit(f"plot_sweep: --reference {path}: predictor '{name}' has no '{key}' (for --metric {metric}); "
                     f"its metrics: {known}")
        values[name] = float(scores[key])
    return values


def reference_lines(reference, path, thresholds, higher_is_better):
    """The reference values as a line of text, each with the headline thresholds it reaches."""
    cells = []
    for name, value in reference.items():
        cell = f"{name} {value:.3f}"
        if higher_is_better:
            reached = [f"{t:g}" for t in thresholds if value >= t]
            cell += f" (reaches {', '.join(reached)})" if reached else ""
        cells.append(cell)
    return f"Reference lines ({path}, test split): " + "; ".join(cells)


def plot(groups, boot, metric, title, path, reference=None):
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
        values = [mean(points[s][0]) for s in states]
        # The interval over seeds as error bars, where there are 2 or more seeds.
        ends = [interval(boot[group][s]) if len(points[s][0]) > 1 else (v, v) for s, v in zip(states, values)]
        errors = [[v - lo for v, (lo, _) in zip(values, ends)], [hi - v for v, (_, hi) in zip(values, ends)]]
        # A known group keeps its colour from plot to plot (C0 bla, C1 swa, ...).
        color = f"C{GROUP_ORDER.index(group) % 10}" if group in GROUP_ORDER else None
        ax.errorbar(states, values, yerr=errors, marker="o", capsize=3, label=group, color=color)
    # Reference lines in greys and dash patterns of their own, named in the legend.
    styles = ["--", ":", "-.", (0, (6, 2, 1, 2, 1, 2))]
    for i, (name, value) in enumerate((reference or {}).items()):
        ax.axhline(value, linestyle=styles[i % len(styles)], linewidth=1.1, color=str(0.2 + 0.15 * (i % 4)),
                   label=f"{name} ({value:.3f})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("state (numbers kept to decode, all layers, batch 1)")
    ax.set_ylabel(f"test {metric.replace('test_', '')}, mean over seeds\n(bars: 95% interval; lr chosen as printed)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def thresholds(text):
    return [float(t) for t in text.split(",")]


def group_pair(text):
    pair = tuple(text.split("/"))
    if len(pair) != 2 or not all(pair):
        raise argparse.ArgumentTypeError(f"'{text}' is not A/B, e.g. swa/bla")
    return pair


def positive(text):
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return number


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", help="results.csv written by bla-sweep")
    parser.add_argument("--out", default=None, help="folder for the PNGs (default: beside the CSV)")
    parser.add_argument("--metric", default="test_accuracy", help="CSV column to plot (default test_accuracy)")
    parser.add_argument("--no-plot", action="store_true", help="print the tables only")
    parser.add_argument("--thresholds", default=[0.5, 0.9, 0.99], type=thresholds,
                        help="headline: the metric values whose crossing states are reported (default 0.5,0.9,0.99)")
    parser.add_argument("--ratio", default=("swa", "bla"), type=group_pair,
                        help="headline: A/B, the ratio of the state A needs to the state B needs (default swa/bla)")
    parser.add_argument("--bootstrap", default=2000, type=positive, help="bootstrap replicates (default 2000)")
    parser.add_argument("--bootstrap-seed", default=0, type=int, help="seed of the bootstrap (default 0)")
    parser.add_argument("--points", action="store_true",
                        help="also a table of every point (a configuration but for its rate and seed): the selection "
                             "column at each rate, the chosen rate, the metric over its seeds")
    parser.add_argument("--reference", default=None, metavar="FILE",
                        help="reference lines: a bla-baseline JSON file on the test split (e.g. n-gram predictors)")
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
    reference = read_reference(args.reference, args.metric) if args.reference else None
    out = args.out or os.path.dirname(os.path.abspath(args.csv))
    select = selection_column(rows, args.metric)
    if select == args.metric:
        print(f"(learning rate chosen on {args.metric} itself: the CSV has no validation column, so this is a choice "
              "on the test set; set data.validation_examples in the sweep)\n")
    else:
        print(f"(learning rate chosen on {select}; {args.metric} reported)\n")
    narrowed, edges = {}, {}
    table = best_points(rows, args.metric, select, narrowed, edges)
    if narrowed:
        seeds = sorted({seed for chosen_on in narrowed.values() for seed in chosen_on}, key=lambda s: (len(s), s))
        print(f"(at {len(narrowed)} state points the rate was chosen on seed(s) {', '.join(seeds)} alone, the seeds "
              "every rate there has, as a sweep file's select chooses; the other seeds ran at the chosen rate)\n")
    if edges:
        where = {side: ", ".join(f"{group} {state:,.0f}" + (f" ({facet_title(facet)})" if facet else "")
                                 for (facet, group, state), s in sorted(edges.items()) if s == side)
                 for side in ("largest", "smallest")}
        said = "; ".join(f"the {side} tried at {where[side]}" for side in ("largest", "smallest") if where[side])
        print(f"(the chosen learning rate is {said}: the rates tried may not hold the best one there)\n")
    points = point_runs(rows, args.metric, select) if args.points else {}
    for facet, groups in sorted(table.items()):
        groups = ordered(groups)
        title = facet_title(facet)
        boot = bootstrap(facet, groups, args.bootstrap, args.bootstrap_seed)
        print(f"### {title}\n")
        print(markdown(groups, boot) + "\n")
        if facet in points:
            print("Every point:\n")
            print(points_markdown(facet, ordered(points[facet]), args.metric, select, args.bootstrap,
                                  args.bootstrap_seed) + "\n")
        if reference:
            print(reference_lines(reference, args.reference, args.thresholds, not lower_is_better(args.metric)) + "\n")
        if not lower_is_better(args.metric):
            for interpolated in (False, True):
                print(headline(groups, boot, args.metric, args.thresholds, args.ratio, args.bootstrap,
                               args.bootstrap_seed, interpolated) + "\n")
        if not args.no_plot:
            os.makedirs(out, exist_ok=True)
            path = os.path.join(out, facet_file(facet) + ".png")
            plot(groups, boot, args.metric, title, path, reference)
            print(f"({path})\n")


if __name__ == "__main__":
    main()
