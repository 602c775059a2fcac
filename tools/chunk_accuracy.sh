#!/usr/bin/env bash
# Accuracy of train-head with every row held against a --memory-budget that forces the train
# split into chunks, per seed, side by side on one feature file (issue 26's "within noise").
#   tools/chunk_accuracy.sh FEATURES.h5 BUDGET [TRAIN-HEAD FLAGS...]
# Prints one line per seed: held and chunked accuracy on the scored split, and the chunk count.
# Example: tools/chunk_accuracy.sh target/tmp/cats_dogs_lite0/gap_EfficientNet-Lite0.h5 1.3MiB
set -euo pipefail
features=$1 budget=$2
shift 2
imgclf=${IMGCLF:-target/debug/imgclf}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
accuracy() { # run dir -> accuracy on evaluate's default split (validation, else test)
    "$imgclf" evaluate --run "$1" --top 0 | sed -n 's/^accuracy *\([0-9.]*\).*/\1/p' | head -1
}
printf '%-5s %-9s %-9s %s\n' seed held chunked chunks
for seed in 0 1 2; do
    "$imgclf" train-head --features "$features" --out "$out/held$seed" --seed "$seed" "$@" >/dev/null 2>&1
    "$imgclf" train-head --features "$features" --out "$out/chunk$seed" --seed "$seed" \
        --memory-budget "$budget" "$@" >/dev/null 2>"$out/log"
    chunks=$(sed -n 's/.* in \([0-9]*\) chunks of.*/\1/p' "$out/log")
    printf '%-5s %-9s %-9s %s\n' "$seed" "$(accuracy "$out/held$seed")" "$(accuracy "$out/chunk$seed")" "${chunks:-held}"
done
