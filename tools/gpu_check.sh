#!/usr/bin/env bash
# The GPU check of `imgclf extract --device cuda`, from a bundle (tools/gpu_bundle.sh) alone:
# one table, every row measured in this run on the same GPU, graphs and files, with the
# seconds of device time each row took.
#
#   tools/gpu_check.sh BUNDLE                 on the GPU machine, with its python3 (PyTorch,
#                                             torchvision, h5py, numpy, Pillow)
#   tools/gpu_check.sh --cpu-dry-run BUNDLE   every line of it on this machine's CPU: the
#                                             bundle's CPU wheel, --device cpu for cuda, small
#                                             counts (`just ci` runs it)
#
# BUNDLE is a folder with the parts MANIFEST lists (on the device: each call's parts copied
# there); each part is checked against its sha256 first, and a missing one is an error. Nothing
# is installed outside WORK: the onnxruntime wheel goes to WORK/site with pip --target, on
# PYTHONPATH of the ONNX Runtime rows alone; library paths are set per command, never globally.
# A row that fails prints FAILED with its last error line, the others still run; the exit
# status is then 1.
# Environment:
#   PYTHON   the python with PyTorch (default python3; in a dry run /usr/bin/python3)
#   IMAGES   the photos hard-linked up to this many for the speed rows (default 16000; dry run 48)
#   WORK     scratch folder, emptied first (default /tmp/imgclf-gpu-check)
set -euo pipefail
cd "$(dirname "$0")/.."
dry=false
[ "${1:-}" = --cpu-dry-run ] && { dry=true; shift; }
bundle=$(realpath "${1:?usage: tools/gpu_check.sh [--cpu-dry-run] BUNDLE}")
work=${WORK:-/tmp/imgclf-gpu-check}
fail() { echo "error: $*" >&2; exit 1; }
if $dry; then
    py=${PYTHON:-/usr/bin/python3} images=${IMAGES:-48} batch=4 cpu_batch=4 sweep="2 4 6 8" seconds=1
    device=(--device cpu) arch=mobilenet_v3_small torch=(--device cpu --arch "$arch") ort_device=(--cpu)
    where="CPU dry run on $(nproc) cores: each cuda row ran on the CPU in fp32, PyTorch's on MobileNetV3-small"
else
    py=${PYTHON:-python3} images=${IMAGES:-16000} batch=256 cpu_batch=32 sweep="64 128 256 512" seconds=5
    device=(--device cuda) arch=resnet50 torch=(--device cuda --arch "$arch") ort_device=()
    command -v nvidia-smi >/dev/null || fail "no nvidia-smi: this is no GPU machine (--cpu-dry-run runs the check on the CPU)"
    where="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader), $(nproc) cores"
fi
began=$(date +%s.%N)

# the bundle: every part MANIFEST lists, whole
[ -f "$bundle/MANIFEST" ] || fail "$bundle/MANIFEST is missing: make the bundle with tools/gpu_bundle.sh"
while read -r sum bytes name; do
    [ -f "$bundle/$name" ] || fail "$bundle/$name is missing (MANIFEST lists it; CALLS says which call carries it)"
    [ "$(sha256sum "$bundle/$name" | cut -d' ' -f1)" = "$sum" ] || fail "$bundle/$name is damaged: its sha256 is not MANIFEST's"
done < "$bundle/MANIFEST"
"$py" -c 'import torch, torchvision, h5py, numpy, PIL' || fail "$py lacks torch, torchvision, h5py, numpy or Pillow"
$dry || "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "torch sees no GPU")'

# unpacked into WORK
rm -rf "$work"; mkdir -p "$work/bin" "$work/logs"
for b in imgclf gpu-test; do xz -dc "$bundle/$b.xz" > "$work/bin/$b"; chmod +x "$work/bin/$b"; done
for t in libs models photos; do tar -C "$work" -xJf "$bundle/$t.tar.xz"; done
wheel=$(awk '$3 ~ /\.whl\.part-/ {print $3}' "$bundle/MANIFEST" | sort)
[ -n "$wheel" ] || fail "$bundle/MANIFEST lists no onnxruntime wheel"
cat $(sed "s|^|$bundle/|" <<<"$wheel") > "$work/$(head -1 <<<"$wheel" | sed 's/\.part-.*//')"
"$py" -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps --no-index --no-compile --target "$work/site" "$work"/*.whl
ort=$(ls "$work"/site/onnxruntime/capi/libonnxruntime.so* | head -1)
models=$work/models lite0=$work/models/efficientnet_lite0.onnx lite1=$work/models/efficientnet_lite1.onnx
# the binaries need nothing outside the bundle's libraries but glibc and the C++ runtime
outside=$(LD_LIBRARY_PATH=$work/libs ldd "$work"/bin/* | awk -v libs="$work/libs/" '
    /not found/ {print $1 " (not found)"; next}
    $2 == "=>" && index($3, libs) != 1 && $1 !~ /^(libc|libm|libpthread|libdl|librt|libresolv|libgcc_s|libstdc\+\+)\.so/ {print $1}' | sort -u)
[ -z "$outside" ] || fail "the bundle's binaries need libraries it lacks: $(echo $outside)"

# per command: imgclf with the bundle's libraries and wheel; ONNX Runtime's Python with the
# wheel and the CUDA/cuDNN folders; PyTorch with nothing added (it brings its own cuDNN)
cuda_libs=$(find /usr/local -maxdepth 4 -path '/usr/local/cuda*/targets/x86_64-linux/lib' 2>/dev/null | sort -r | paste -sd:)
cudnn=$(/sbin/ldconfig -p 2>/dev/null | awk '/libcudnn\.so\.9 / {print $NF; exit}')
ort_libs=$cuda_libs${cudnn:+:$(dirname "$cudnn")}
imgclf() { LD_LIBRARY_PATH=$work/libs ORT_DYLIB_PATH=$ort "$work/bin/imgclf" "$@"; }
ort_py() { PYTHONPATH=$work/site LD_LIBRARY_PATH=$ort_libs "$py" tools/gpu_bench.py "$@"; }
torch_py() { "$py" tools/gpu_bench.py "$@"; }

# the photos, hard-linked up to IMAGES for the speed rows
have=$(find "$work/photos" -type f | wc -l)
copies=$(( (images + have - 1) / have ))
"$py" - "$work/photos" "$work/data" "$copies" <<'PY'
import os, pathlib, sys
src, dst, copies = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
for f in (p for p in src.rglob("*") if p.is_file()):
    (dst / f.parent.relative_to(src)).mkdir(parents=True, exist_ok=True)
    for k in range(1, copies + 1):
        os.link(f, dst / f.parent.relative_to(src) / f"{k}-{f.name}")
PY
images=$(find "$work/data" -type f | wc -l)

rows=() failed=0
# row LABEL COMMAND...: COMMAND prints `RATE [COLD]`; the row adds its device seconds
row() {
    local label=$1 start got value cold secs log
    shift
    start=$(date +%s.%N) log=$work/logs/${#rows[@]}.log
    if got=$("$@" 2>"$log") && [ -n "$got" ]; then
        read -r value cold <<<"$got"
    else
        value="FAILED: $(grep -v '^\s*$' "$log" | tail -1 | cut -c1-160)" cold=- failed=$((failed + 1))
    fi
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.0f", e - s}')
    rows+=("| $label | $value | ${cold:--} | $secs |")
    echo "${rows[-1]}"
}
# a rate line's number(s): `images/s N [cold M]` -> `N [M]`
rate() { "$@" | awk '/^images\/s/ {print $2, $4}' | grep .; }
# `imgclf extract` from JPEGs on DATA in batches of BATCH: its steady rate, then its cold one
# (process start included)
extract() {
    local data=$1 batch=$2; shift 2
    imgclf extract --data "$data" --out "$work/out" --force --engine ort --batch "$batch" "$@" \
        | sed -n 's/.*(\([0-9.]*\) images\/s; \([0-9.]*\) steady.*/\2 \1/p' | grep . \
        || { echo "imgclf printed no steady rate: more than 3 batches of $batch are needed" >&2; return 1; }
}
precision() { $dry || echo "--precision $1"; }
# the largest relative difference between MODEL's features on DEVICE_FLAGS and on the CPU
features() {
    local model=$1 name; shift
    imgclf extract --data "$work/photos" --model "$model" --out "$work/gpu" --force --engine ort "$@" >/dev/null
    name=$(basename "$(ls "$work"/gpu/gap_*.h5)")
    [ -f "$work/cpu/$name" ] || imgclf extract --data "$work/photos" --model "$model" --out "$work/cpu" --engine ort >/dev/null
    "$py" tools/gpu_bench.py compare "$work/gpu/$name" "$work/cpu/$name" | awk '{print $2}'
    rm -rf "$work/gpu"
}
# the GPU test (IMGCLF_GPU=1 on the GPU; in a dry run it only shows it runs here)
gpu_test() {
    IMGCLF_GPU=$($dry && echo 0 || echo 1) IMGCLF_ROOT=$PWD LITE0=$lite0 LD_LIBRARY_PATH=$work/libs ORT_DYLIB_PATH=$ort \
        "$work/bin/gpu-test" --test-threads 1 >&2
    if $dry; then echo ran; else echo passed; fi
}
decode_rate() { imgclf verify --data "$1" | sed -n 's/.*(\([0-9.]*\) images\/s).*/\1/p' | grep .; }
export_resnet50() { "$py" tools/export_torchvision.py --arch resnet50 --weights none --out-dir "$models" >&2 && echo done; }

echo "imgclf GPU check: $where; $images images ($have photos x $copies); bundle $bundle"
row "crates/features/tests/gpu.rs: pinned feed, full and short batches, fp32/tf32 vs CPU" gpu_test
row "ResNet50 (torchvision, random weights) exported to ONNX" export_resnet50
r50=$models/resnet50.onnx

for p in fp32 tf32; do
    row "raw ONNX Runtime CUDA, IO binding, ResNet50 $p, ready batch of $batch" \
        rate ort_py raw-ort "$r50" --precision "$p" --batch "$batch" --seconds "$seconds" "${ort_device[@]}"
done
for p in fp32 tf32 fp16; do
    row "PyTorch, torchvision $arch (the same graph on the GPU), $p, ready batch of $batch" \
        rate torch_py torch-graph --precision "$p" --batch "$batch" --seconds "$seconds" "${torch[@]}"
done
for p in fp32 tf32; do
    row "imgclf extract from JPEGs, ResNet50 $p, batch $batch" extract "$work/data" "$batch" --model "$r50" "${device[@]}" $(precision "$p")
done
for p in fp32 tf32 fp16; do
    row "PyTorch DataLoader from JPEGs (Pillow, $(nproc) workers), $arch $p, batch $batch" \
        rate torch_py dataloader "$work/data" --precision "$p" --batch "$batch" "${torch[@]}"
done
for p in fp32 tf32; do
    row "imgclf extract from JPEGs, Lite0 $p, batch $batch" extract "$work/data" "$batch" --model "$lite0" "${device[@]}" $(precision "$p")
done
row "imgclf extract from JPEGs, Lite1 fp32, batch $batch" extract "$work/data" "$batch" --model "$lite1" "${device[@]}"
for b in $sweep; do
    row "imgclf extract from JPEGs, Lite0 fp32, batch $b" extract "$work/data" "$b" --model "$lite0" "${device[@]}"
done
row "decode only: imgclf verify, all cores" decode_rate "$work/data"
row "decode and transform only: PyTorch DataLoader, $(nproc) workers" \
    rate torch_py dataloader "$work/data" --precision none --batch "$batch" "${torch[@]}"
row "the CPU: raw ONNX Runtime, all cores, Lite0, ready batch of $cpu_batch" \
    rate ort_py raw-ort "$lite0" --cpu --batch "$cpu_batch" --seconds "$seconds"
row "the CPU: imgclf extract --device cpu, Lite0 (default thread split, batch $cpu_batch)" \
    extract "$work/data" "$cpu_batch" --model "$lite0" --device cpu
for m in "$r50" "$lite0"; do
    for p in fp32 tf32; do
        row "$(basename "$m" .onnx) features, GPU $p vs CPU, $have photos (max relative difference)" \
            features "$m" "${device[@]}" $(precision "$p")
    done
done

total=$(awk -v s="$began" -v e="$(date +%s.%N)" 'BEGIN {printf "%.0f", e - s}')
{
    echo
    echo "imgclf GPU check: $where; $images images ($have photos x $copies); $total s in all"
    echo
    echo "| row | images/s (steady) | cold | seconds |"
    echo "|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
} | tee "$work/table.md"
[ "$failed" -eq 0 ] || { echo "$failed rows FAILED: their logs are in $work/logs (row N: N.log)" >&2; exit 1; }
