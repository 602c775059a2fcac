# imgclf in a container, for deploy/k8s/ (and Slurm sites that run containers):
#
#   docker build -t imgclf .
#   docker run --rm -v $PWD/data:/data imgclf extract --data /data/photos --model /data/model.onnx --out /data/features
#
# Build stage: the release binary, and ONNX Runtime's library taken out of its PyPI wheel.
# Runtime stage: Debian slim with libhdf5's runtime, the binary and that library (ORT_DYLIB_PATH).
# GPU image: --build-arg ORT=onnxruntime-gpu==1.31.1 --build-arg RUNTIME=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04
# (then the runtime stage's apt names are Ubuntu's: libhdf5-103-1t64). Not built here: this
# project's machines cannot fetch container images.
ARG RUNTIME=debian:bookworm-slim

FROM rust:1.95-bookworm AS build
ARG ORT=onnxruntime==1.32.0
RUN apt-get update && apt-get install -y --no-install-recommends libhdf5-dev pkg-config python3-pip unzip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p imgclf && strip target/release/imgclf
RUN pip3 download --no-deps --only-binary=:all: --dest /tmp/wheel "$ORT" \
    && unzip -q -j /tmp/wheel/*.whl 'onnxruntime/capi/libonnxruntime*.so*' -d /opt/onnxruntime \
    && ln -s "$(cd /opt/onnxruntime && ls libonnxruntime.so.1.* | head -1)" /opt/onnxruntime/libonnxruntime.so

FROM ${RUNTIME}
RUN apt-get update && apt-get install -y --no-install-recommends libhdf5-103-1 libstdc++6 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/imgclf /usr/local/bin/imgclf
COPY --from=build /opt/onnxruntime /opt/onnxruntime
ENV ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so
ENTRYPOINT ["imgclf"]
