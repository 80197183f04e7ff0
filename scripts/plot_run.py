#!/usr/bin/env python3
"""Plots the training curves of one or several bla-train runs.

    scripts/plot_run.py runs/mqar_attention runs/mqar_bla --out docs/img/mqar_runs

Reads each run's metrics.jsonl (a run directory, or the file itself) and
draws one PNG per quantity against step: loss, accuracy, learning rate,
grad norm and tokens/s, one line per run (named by its directory). Train
records make the lines; evaluations (test records) are markers on the loss
and accuracy plots. Prints a table of final and best values per run as
markdown. Needs matplotlib only for the PNGs (--no-plot prints the table
without it).
"""
import argparse
import json
import math
import os
import sys

# (metrics.jsonl key, file name, axis label, log scale); the order of the PNGs.
QUANTITIES = [
    ("loss", "loss", "loss (cross-entropy, nats)", False),
    ("accuracy", "accuracy", "accuracy", False),
    ("lr", "lr", "learning rate", False),
    ("grad_norm", "grad_norm", "gradient norm (before clipping)", True),
    ("tokens_per_s", "tokens_per_s", "tokens / s", False),
]
# Evaluations carry these too; they are drawn as markers over the train lines.
TEST_QUANTITIES = {"loss", "accuracy"}


def metrics_path(run):
    return run if run.endswith(".jsonl") and not os.path.isdir(run) else os.path.join(run, "metrics.jsonl")


def read_run(run):
    """{"train": [record, ...], "test": [...]}, each sorted by step.

    A step logged twice (a resumed run's file as it was before bla-train
    dropped the redone lines, or a file concatenated by hand) keeps its last
    record. A line that is not JSON (one being written) is skipped with a note.
    """
    path = metrics_path(run)
    if not os.path.exists(path):
        sys.exit(f"plot_run: {path} does not exist (expected a run directory holding metrics.jsonl, or the file)")
    by_step = {"train": {}, "test": {}}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                print(f"(skipped {path}, line {number}: not JSON: {e.msg})", file=sys.stderr)
                continue
            split, step = record.get("split"), record.get("step")
            if split in by_step and isinstance(step, (int, float)):
                by_step[split][step] = record
    return {split: [records[s] for s in sorted(records)] for split, records in by_step.items()}


def run_labels(runs):
    """Each run's directory name; the longer path where two names collide."""
    names = [os.path.basename(os.path.normpath(os.path.dirname(metrics_path(r)) or ".")) for r in runs]
    if len(set(names)) == len(names):
        return names
    return [os.path.normpath(os.path.dirname(metrics_path(r)) or ".") for r in runs]


def series(records, key):
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    return [p for p in points if math.isfinite(p[1])]


def number(value, key):
    if value is None:
        return ""
    if key == "tokens_per_s":
        return f"{value:,.0f}"
    if key == "lr":
        return f"{value:.2e}"
    return f"{value:.4f}"


def summary_table(labels, data):
    """Markdown: per run, the last step and final (best) values."""
    columns = [("train", "loss", min), ("train", "accuracy", max), ("test", "loss", min), ("test", "accuracy", max)]
    header = ["run", "steps"] + [f"{split} {key} final (best)" for split, key, _ in columns] + ["tokens/s (mean)"]
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " --- |" * (len(header) - 1)]
    for label, run in zip(labels, data):
        steps = [r["step"] for r in run["train"] + run["test"]]
        cells = [label, str(int(max(steps))) if steps else ""]
        for split, key, best in columns:
            points = series(run[split], key)
            if points:
                final, top = points[-1][1], best(v for _, v in points)
                cells.append(f"{number(final, key)} ({number(top, key)})")
            else:
                cells.append("")
        rates = [v for _, v in series(run["train"], "tokens_per_s")]
        cells.append(number(sum(rates) / len(rates), "tokens_per_s") if rates else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(labels, data, key, label, log_scale, path):
    try:
        import matplotlib
    except ImportError:
        sys.exit(f"plot_run: matplotlib is missing for {sys.executable}: apt-get install python3-matplotlib "
                 "(then run /usr/bin/python3 scripts/plot_run.py ...) or pip install matplotlib; "
                 "--no-plot prints the table without it")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, (name, run) in enumerate(zip(labels, data)):
        color = f"C{i % 10}"  # a run keeps its colour from plot to plot
        train = series(run["train"], key)
        if train:
            ax.plot([s for s, _ in train], [v for _, v in train], color=color, label=name, linewidth=1.2)
        test = series(run["test"], key) if key in TEST_QUANTITIES else []
        if test:
            ax.plot([s for s, _ in test], [v for _, v in test], color=color, linestyle="none", marker="o",
                    markersize=5, label=f"{name} (test)")
    if log_scale and all(v > 0 for run in data for _, v in series(run["train"], key)):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(label)
    ax.set_title(label)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories (or their metrics.jsonl files)")
    parser.add_argument("--out", default=None, help="folder for the PNGs (default: <run>/plots for one run; "
                        "needed for several)")
    parser.add_argument("--no-plot", action="store_true", help="print the table only")
    args = parser.parse_args()
    if args.out is None and len(args.runs) > 1:
        sys.exit("plot_run: --out DIR is needed to plot several runs (one PNG per quantity holds them all)")

    data = [read_run(run) for run in args.runs]
    labels = run_labels(args.runs)
    empty = [label for label, run in zip(labels, data) if not run["train"] and not run["test"]]
    if len(empty) == len(data):
        sys.exit(f"plot_run: no train or test records in {', '.join(metrics_path(r) for r in args.runs)}")
    if empty:
        print(f"(no records yet: {', '.join(empty)})\n")
    print(summary_table(labels, data) + "\n")
    if args.no_plot:
        return
    out = args.out or os.path.join(os.path.dirname(metrics_path(args.runs[0])) or ".", "plots")
    os.makedirs(out, exist_ok=True)
    for key, file_name, label, log_scale in QUANTITIES:
        if not any(series(run["train"], key) or series(run["test"], key) for run in data):
            print(f"(no {key} in these runs: no {file_name}.png)")
            continue
        path = os.path.join(out, file_name + ".png")
        plot(labels, data, key, label, log_scale, path)
        print(f"({path})")


if __name__ == "__main__":
    main()
