# What the bench scripts share (sourced after they set $work): the tools, the model, and
# `timed`, which runs a command and prints "seconds peak_MB", its output in $work/last.log.
shared=${IMGCLF_SHARED:-../shared}
python=${IMGCLF_PYTHON:-.venv/bin/python}
imgclf=target/debug/imgclf
model=$shared/models/efficientnet_lite0.onnx
mkdir -p "$work"
timed() {
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/last.log" 2>&1 || { tail -3 "$work/last.log" >&2; exit 1; }
    awk '{printf "%s %.0f\n", $1, $2 / 1024}' "$work/time"
}
