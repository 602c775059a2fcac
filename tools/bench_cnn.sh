#!/usr/bin/env bash
# Seconds per epoch of `imgclf train-cnn` next to Keras training the same net on the same
# photos (tools/keras_cnn_reference.py, TensorFlow in .venv-keras), one after the other in one
# run: training plus scoring the validation split, median of the epochs after the first.
# Prints one Markdown row per net and the ratio imgclf / Keras.
#
#   tools/bench_cnn.sh [EPOCHS]          # ./just bench-cnn runs it; default 3 epochs
#
# Environment: IMGCLF (default target/debug/imgclf, what ./just runs), KERAS_PYTHON (default
# .venv-keras/bin/python), SHARED (default ../shared), SEED (default 0).
set -euo pipefail
epochs=${1:-3}
bin=${IMGCLF:-target/debug/imgclf}
py=${KERAS_PYTHON:-.venv-keras/bin/python}
shared=${SHARED:-../shared}
seed=${SEED:-0}
[ -x "$py" ] || { echo "no Keras: run ./just keras-backbones to make .venv-keras" >&2; exit 1; }
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT

median_after_first() { # one number per line on stdin
    tail -n +2 | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

echo "| net | data | imgclf s/epoch | Keras s/epoch | imgclf / Keras |"
echo "|---|---|---|---|---|"
for case in "small cats_dogs" "lenet traffic_signs"; do
    read -r arch data <<<"$case"
    "$bin" train-cnn --arch "$arch" --data "$shared/data/$data" --out "$runs/$arch" --epochs "$epochs" --seed "$seed" \
        >/dev/null 2>&1
    ours=$(tail -n +2 "$runs/$arch/history.csv" | awk -F, '{ print $NF }' | median_after_first | xargs printf "%.2f")
    theirs=$("$py" tools/keras_cnn_reference.py train --arch "$arch" --data "$shared/data/$data" --epochs "$epochs" \
        --seed "$seed" 2>/dev/null | grep '"epoch"' | sed 's/.*"seconds": \([0-9.]*\).*/\1/' | median_after_first)
    echo "| $arch | $data | $ours | $theirs | $(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }') |"
done
