#!/usr/bin/env python3
"""results_so_far.csv = call 6's SWA rows + the newest results.csv's done rows of every other group (bla_window
rows only at 64 slots: the group held 16 slots until 2026-12-07). Old header order kept, new columns appended.
  python3 docs/data/gpu_run_2026_12_07_h/merge_results.py docs/data/mqar_protocol/full/call34_results.csv
(run from the repository root)."""
import csv, sys
d = "docs/data/mqar_protocol/full/"
newest = sys.argv[1]
old_header = next(csv.reader(open(d + "results_so_far.csv")))
rows = [r for r in csv.DictReader(open(d + "call6_results.csv")) if r["group"] == "swa"]
new = list(csv.DictReader(open(newest)))
header = list(old_header)
for k in new[0].keys():
    if k not in header: header.append(k)
for r in new:
    if r["group"] == "swa" or r["status"] != "done": continue
    if r["group"] == "bla_window" and r["model.mixers.bla.slots"] != "64": continue
    rows.append(r)
with open(d + "results_so_far.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=header, lineterminator="\n", restval="")
    w.writeheader()
    for r in rows: w.writerow({k: r.get(k, "") for k in header})
print(len(rows), "rows")
