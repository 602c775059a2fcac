#!/usr/bin/env bash
# README's temperature table: ECE and log loss on a split calibration did not see, before and
# after `imgclf calibrate`, for the tutorial's head, the mlp head and the small CNN, on
# traffic_signs with half of its test split carved out as validation (tools/split_off.py
# --from test: frames of other signs than train's, as test's are): each run is calibrated on
# validation and scored on the other half of test.
#
#   tools/temperature_table.sh [WORK]       # default WORK: runs/temperature-table
#
# Environment: IMGCLF (default target/debug/imgclf), IMGCLF_SHARED (default ../shared),
# PYTHON (default .venv/bin/python), MODEL (default ../shared/models/efficientnet_lite0.onnx),
# CNN_EPOCHS (default 10).
set -euo pipefail
bin=${IMGCLF:-target/debug/imgclf}
shared=${IMGCLF_SHARED:-../shared}
py=${PYTHON:-.venv/bin/python}
model=${MODEL:-$shared/models/efficientnet_lite0.onnx}
work=${1:-runs/temperature-table}
mkdir -p "$work"
[ -d "$work/data" ] || "$py" tools/split_off.py "$shared/data/traffic_signs" "$work/data" --from test --fraction 0.5
"$bin" extract --data "$work/data" --model "$model" --out "$work/features" >/dev/null 2>&1
features=$work/features/gap_EfficientNet-Lite0.h5

scores() { # run folder, evaluate flags -> "ece log_loss"
    "$bin" evaluate --run "$1" --split test "${@:2}" | sed -n 's/.*log loss \([0-9.]*\).*ECE \([0-9.]*\).*/\2 \1/p' | head -1
}
row() { # label, run folder
    "$bin" calibrate --run "$2" >/dev/null
    local t before after
    t=$("$py" -c 'import json, sys; print("%.3f" % json.load(open(sys.argv[1]))["temperature"])' "$2/temperature.json")
    read -r be bl <<<"$(scores "$2" --uncalibrated)"
    read -r ae al <<<"$(scores "$2")"
    echo "| $1 | $t | $be | $ae | $bl | $al |"
}
"$bin" train-head --features "$features" --out "$work/tutorial" --head logistic --seed 7 --force >/dev/null 2>&1
"$bin" train-head --features "$features" --out "$work/mlp" --head mlp --seed 7 --force >/dev/null 2>&1
"$bin" train-head --features "$features" --out "$work/probe" --force >/dev/null 2>&1
"$bin" train-cnn --arch small --size 48 --epochs "${CNN_EPOCHS:-10}" --data "$work/data" --out "$work/cnn" --seed 7 --force >/dev/null 2>&1
echo "| run | temperature | ECE before | ECE after | log loss before | log loss after |"
echo "|---|---|---|---|---|---|"
row "tutorial head (Lite0)" "$work/tutorial"
row "mlp-256 head (Lite0)" "$work/mlp"
row "probe, C auto (Lite0)" "$work/probe"
row "small CNN (48 px, ${CNN_EPOCHS:-10} epochs)" "$work/cnn"
