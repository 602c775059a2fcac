#!/usr/bin/env bash
# Two imgclf binaries side by side on one dataset, alternating, on a quiet machine: extract
# rates (two rounds each), then train-head + evaluate on each one's features, with the
# weights and the feature files compared. What the refactor of issue 25 was checked with:
#
#   git worktree add ../old REV && (cd ../old && CARGO_TARGET_DIR=../old-target cargo build -p imgclf)
#   tools/compare_builds.sh ../old-target/debug/imgclf target/debug/imgclf [DATA] [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: tools/compare_builds.sh OLD_BIN NEW_BIN [DATA] [MODEL]}; new=${2:?usage}
data=${3:-../shared/data/cats_dogs}; model=${4:-../shared/models/efficientnet_lite0.onnx}
python=${IMGCLF_PYTHON:-.venv/bin/python}
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
for round in 1 2; do
    for side in old new; do
        bin=$old; [ $side = new ] && bin=$new
        echo "extract $side round $round: $("$bin" extract --data "$data" --model "$model" --out "$out/feat-$side" --force 2>/dev/null | tail -1)"
    done
done
for side in old new; do
    bin=$old; [ $side = new ] && bin=$new
    "$bin" train-head --features "$out/feat-$side"/gap_*.h5 --out "$out/run-$side" --seed 7 --force >/dev/null 2>&1
    echo "evaluate $side: $("$bin" evaluate --run "$out/run-$side" 2>/dev/null | grep -m1 accuracy)"
done
cmp -s "$out/run-old/weights.safetensors" "$out/run-new/weights.safetensors" \
    && echo "weights.safetensors: identical bytes" || echo "weights.safetensors: DIFFER"
"$python" - "$out"/feat-old/gap_*.h5 "$out"/feat-new/gap_*.h5 <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
same = set(a) == set(b) and all(np.array_equal(a[k][()], b[k][()]) for k in a)
print("feature files: every dataset equal" if same else "feature files: DIFFER")
PY
