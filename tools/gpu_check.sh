#!/usr/bin/env bash
# The GPU check of `--device cuda`, on a machine with an NVIDIA GPU, PyTorch and torchvision:
# one table, every row measured in this run on the same GPU, graph and files.
#
#   tools/gpu_check.sh PHOTOS [COPIES]
#
# PHOTOS is a data root (train/<class>/*.jpg, validation/...); it is replicated COPIES times
# (default 16, hard links) into a scratch data root so the runs last long enough to measure.
# Environment:
#   IMGCLF        the binary (default target/release/imgclf, else target/debug/imgclf)
#   ORT_GPU_WHEEL onnxruntime_gpu-1.31.1 wheel to install into .venv-gpu when that is missing
#   LITE0         EfficientNet-Lite0 ONNX with its spec beside it (default ../shared/models/...)
#   OUT           scratch folder (default /tmp/imgclf-gpu-check)
# Rows: raw ONNX Runtime CUDA EP with IO binding (fp32, tf32) vs PyTorch on the same ResNet50
# graph; `imgclf extract --device cuda` end to end from JPEGs (ResNet50 fp32/tf32, Lite0, and
# Lite0 over batch 64..512) vs PyTorch's DataLoader pipeline on the same files; on the CPU,
# imgclf's default decode/engine thread split vs the raw engine on every core; GPU features
# vs the CPU's (max relative difference).
set -euo pipefail
cd "$(dirname "$0")/.."
photos=${1:?usage: tools/gpu_check.sh PHOTOS [COPIES]}
copies=${2:-16}
out=${OUT:-/tmp/imgclf-gpu-check}
imgclf=${IMGCLF:-$( [ -x target/release/imgclf ] && echo target/release/imgclf || echo target/debug/imgclf )}
lite0=${LITE0:-../shared/models/efficientnet_lite0.onnx}
mkdir -p "$out"

for d in /usr/local/cuda*/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
if ! ls .venv-gpu/lib/python*/site-packages/onnxruntime/capi/libonnxruntime.so.* >/dev/null 2>&1; then
    [ -n "${ORT_GPU_WHEEL:-}" ] || { echo "no .venv-gpu: run ./just setup-gpu, or set ORT_GPU_WHEEL" >&2; exit 1; }
    python3 -m venv --system-site-packages .venv-gpu
    .venv-gpu/bin/python -m pip install -q --no-deps --no-index "$ORT_GPU_WHEEL"
fi
py=.venv-gpu/bin/python
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader

# the data: PHOTOS replicated COPIES times
data="$out/data"
if [ ! -d "$data" ]; then
    for split in train validation; do
        for class in "$photos/$split"/*/; do
            c=$(basename "$class"); mkdir -p "$data/$split/$c"
            for k in $(seq 1 "$copies"); do
                for f in "$class"*; do ln -f "$f" "$data/$split/$c/$k-$(basename "$f")" 2>/dev/null || cp "$f" "$data/$split/$c/$k-$(basename "$f")"; done
            done
        done
    done
fi
images=$(find "$data" -type f | wc -l)
echo "$images images in $data"

# ResNet50 from torchvision (random weights: the speed is the same)
[ -f "$out/resnet50.onnx" ] || "$py" tools/export_torchvision.py --arch resnet50 --weights none --out-dir "$out" >/dev/null

rows=()
row() { rows+=("| $1 | $2 |"); echo "$1: $2"; }
rate() { "$@" | awk '/images\/s/ {print $2}'; }
# images/s of an imgclf extract run, from its summary line
extract_rate() {
    local dir=$1; shift
    rm -rf "$dir"
    "$imgclf" extract --data "$data" --out "$dir" --force "$@" | sed -n 's/.*(\([0-9.]*\) images\/s.*/\1/p' | head -1
}

row "raw ORT CUDA EP, IO binding, ResNet50 fp32, batch 256" "$(rate "$py" tools/gpu_bench.py raw-ort "$out/resnet50.onnx" --precision fp32)"
row "raw ORT CUDA EP, IO binding, ResNet50 tf32, batch 256" "$(rate "$py" tools/gpu_bench.py raw-ort "$out/resnet50.onnx" --precision tf32)"
row "PyTorch, same graph, fp32 (TF32 off), batch 256" "$(rate "$py" tools/gpu_bench.py torch-graph)"
row "PyTorch, same graph, tf32, batch 256" "$(rate "$py" tools/gpu_bench.py torch-graph --tf32)"
row "PyTorch, same graph, fp16 channels-last, batch 256" "$(rate "$py" tools/gpu_bench.py torch-graph --fp16)"
row "PyTorch DataLoader from JPEGs (Pillow, 16 workers, pinned, fp16)" "$(rate "$py" tools/gpu_bench.py dataloader "$data")"
row "imgclf extract --device cuda, ResNet50 fp32" "$(extract_rate "$out/r50-fp32" --model "$out/resnet50.onnx" --device cuda)"
row "imgclf extract --device cuda --precision tf32, ResNet50" "$(extract_rate "$out/r50-tf32" --model "$out/resnet50.onnx" --device cuda --precision tf32)"
if [ -f "$lite0" ]; then
    for batch in 64 128 256 512; do
        row "imgclf extract --device cuda, Lite0, batch $batch" "$(extract_rate "$out/lite0-$batch" --model "$lite0" --device cuda --batch "$batch")"
    done
fi

# the same machine's cores without the GPU: imgclf's default thread split vs the raw engine
if [ -f "$lite0" ]; then
    row "raw ORT CPU, all cores, Lite0, ready batch of 32" "$(rate "$py" tools/gpu_bench.py raw-ort "$lite0" --cpu --batch 32)"
    row "imgclf extract --device cpu, Lite0 (default thread split)" "$(extract_rate "$out/lite0-cpu" --model "$lite0" --device cpu)"
fi

# features: the GPU's against the CPU's on the original photos
cpu="$out/cpu"; rm -rf "$cpu"
"$imgclf" extract --data "$photos" --model "$out/resnet50.onnx" --out "$cpu" >/dev/null
for precision in fp32 tf32; do
    gpu="$out/gpu-$precision"; rm -rf "$gpu"
    "$imgclf" extract --data "$photos" --model "$out/resnet50.onnx" --out "$gpu" --device cuda --precision "$precision" >/dev/null
    diff=$("$py" tools/gpu_bench.py compare "$gpu/gap_ResNet50-torchvision.h5" "$cpu/gap_ResNet50-torchvision.h5" | awk '{print $2}')
    row "ResNet50 features, GPU $precision vs CPU (max relative difference)" "$diff"
done

echo
echo "| $images images from $photos x $copies; $(nvidia-smi --query-gpu=name --format=csv,noheader) | images/s |"
echo "|---|---|"
printf '%s\n' "${rows[@]}"
