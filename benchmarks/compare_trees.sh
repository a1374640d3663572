#!/bin/bash
# Interleaved benchmark of two source trees (git worktrees under /work): each tree runs its own benchmark scripts.
# Usage: edit the tree names (baseline = the old commit, main = the new one), then run it on an idle machine.
export MPLCONFIGDIR=/tmp/mpl NETDYN_DATA=/work/shared/data
PY=/work/main/.venv/bin/python
for i in 1 2 3; do
  for tree in baseline main; do
    cd /work/$tree; echo "=== round $i $tree train"; PYTHONPATH=/work/$tree/src $PY benchmarks/bench_train.py --steps 20 --runs 1 2>&1 | tail -4
  done
  for tree in baseline main; do
    cd /work/$tree; echo "=== round $i $tree population"; PYTHONPATH=/work/$tree/src $PY benchmarks/bench_population.py --steps 200 --rounds 1 2>&1 | tail -5
  done
  for tree in baseline after17; do
    cd /work/$tree; echo "=== round $i $tree monitor"; PYTHONPATH=/work/$tree/src $PY benchmarks/bench_monitor.py --epochs 20 --runs 1 2>&1 | tail -5
  done
done
echo ALLDONE
