#!/usr/bin/env python3
"""The public anchors' timing script ($ANCHORS/bench.py) with the op table's D = 128 shape added.

bench.py times its Triton and Inductor kernels (FLA chunk_gla and chunk_gsa,
mamba_ssm's SSD, FlexAttention SWA) at B4 T8192 H16 only for D = 64; at
D = 128 it has them at FLA's registry shapes (B4 T2048, B2 T16384) and
cuDNN SDPA alone at B4 T8192 H16 D128, the op table's shape. This runs its
main() with those ops at B4_T8192_H16_D128 appended to its task list, so
`--shapes B4_T8192_H16_D128` times them beside ours. Its compile workers
(bench.py --warm, started from its own __file__) start this file instead,
so they compile the added tasks too, and only at the shapes --shapes keeps
(bench.py's workers compile every shape of its list, the ones the run
will not time included; the parent passes its --shapes to them in
ANCHOR_BENCH_SHAPES). Arguments are bench.py's.

    ANCHORS=.anchors python3 scripts/anchor_bench.py --shapes B4_T8192_H16_D64,B4_T8192_H16_D128 ...
"""
import os
import sys

ADDED_SHAPE = 'B4_T8192_H16_D128'
ADDED_OPS = ('fla_chunk_gla', 'fla_chunk_gsa_M64', 'mamba2_ssd_G=H_N=D', 'flex_swa_W512', 'flex_swa_W2048')


def shapes_argument(argv):
    """The value of --shapes in argv ('' when not given)."""
    for i, arg in enumerate(argv):
        if arg == '--shapes' and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith('--shapes='):
            return arg.split('=', 1)[1]
    return ''


def main():
    anchors = os.environ.get('ANCHORS', '')
    if not anchors or not os.path.isfile(os.path.join(anchors, 'bench.py')):
        sys.exit(f"anchor_bench.py: ANCHORS must name the folder holding bench.py (got '{anchors}')")
    sys.path.insert(0, os.path.realpath(anchors))
    import bench  # noqa: E402  (the anchors' script, found through ANCHORS)

    tasks = list(bench.TASKS)
    tasks += [(op, ADDED_SHAPE) for op in ADDED_OPS if (op, ADDED_SHAPE) not in tasks]
    if 'ANCHOR_BENCH_SHAPES' not in os.environ:  # the parent run: its --shapes, for its workers too
        os.environ['ANCHOR_BENCH_SHAPES'] = shapes_argument(sys.argv[1:])
    keep = [shape for shape in os.environ['ANCHOR_BENCH_SHAPES'].split(',') if shape]
    if keep:
        tasks = [task for task in tasks if task[1] in keep]
    bench.TASKS = tasks
    bench.__file__ = os.path.realpath(__file__)  # its compile workers run this file, with the same tasks
    bench.main()


if __name__ == '__main__':
    main()
