#!/usr/bin/env bash
# Work lost to a SIGKILL: an uninterrupted extract, then one killed at FRACTION of its time and
# rerun to the end, side by side; rework = killed + rerun - uninterrupted (issue 26's target:
# at most one checkpoint interval, plus the set-up a rerun repeats).
#   tools/kill_rework.sh DATA MODEL [CHECKPOINT_SECS=5] [FRACTION=0.7]
set -euo pipefail
data=$1 model=$2 secs=${3:-5} fraction=${4:-0.7}
imgclf=${IMGCLF:-target/debug/imgclf}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
now() { date +%s.%N; }
extract() { "$imgclf" extract --data "$data" --model "$model" --out "$out/$1" --checkpoint-secs "$secs" "${@:2}"; }
t0=$(now); extract whole >/dev/null 2>&1; t1=$(now)
whole=$(echo "$t1 - $t0" | bc -l)
kill_at=$(echo "$whole * $fraction" | bc -l)
t0=$(now); extract killed >/dev/null 2>&1 & pid=$!
sleep "$kill_at"; kill -KILL "$pid"; wait "$pid" 2>/dev/null || true; t1=$(now)
killed=$(echo "$t1 - $t0" | bc -l)
shopt -s nullglob
records=("$out"/killed/*.partial/part-*.json)
kept=0
[ ${#records[@]} -eq 0 ] || kept=$(sed -n 's/.*"images":\([0-9]*\).*/\1/p' "${records[@]}" | sort -n | tail -1)
t0=$(now); extract killed >/dev/null 2>&1; t1=$(now)
rerun=$(echo "$t1 - $t0" | bc -l)
printf 'uninterrupted %.1f s | killed at %.1f s (%s images committed) | rerun %.1f s | rework %.1f s (checkpoint every %s s)\n' \
    "$whole" "$killed" "$kept" "$rerun" "$(echo "$killed + $rerun - $whole" | bc -l)" "$secs"
"${IMGCLF_PYTHON:-.venv/bin/python}" - "$out"/whole/*.h5 "$out"/killed/*.h5 <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(f) for f in sys.argv[1:3])
same = sorted(a) == sorted(b) and all(np.array_equal(a[k][()], b[k][()]) for k in a)
print("resumed file equals the uninterrupted one (every dataset, checksum):", same and a.attrs["checksum"] == b.attrs["checksum"])
PY
