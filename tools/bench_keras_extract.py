#!/usr/bin/env python3
"""Keras itself, the tutorial's way, for the ResNet50 row of `just bench`:
`tf.keras.applications.ResNet50(include_top=False, pooling='avg')` and `predict` over
`image_dataset_from_directory` with `preprocess_input`, then h5py. Random weights (the speed
is the same as ImageNet's). TensorFlow limited to THREADS intra-op threads.

  .venv-keras/bin/python tools/bench_keras_extract.py DATA_SPLIT_DIR OUT.h5 [--threads 2] [--batch 32]

Prints one JSON line: images, seconds, images/s.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    args = bench_common.parse("split_dir", "out")
    start = time.perf_counter()
    import h5py
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = tf.keras.applications.ResNet50(include_top=False, pooling="avg", weights=None)
    ds = tf.keras.utils.image_dataset_from_directory(
        args.split_dir, image_size=(224, 224), batch_size=args.batch, shuffle=False, label_mode="int")
    labels = np.array([ds.class_names.index(os.path.basename(os.path.dirname(p))) for p in ds.file_paths])
    ds = ds.map(lambda x, y: tf.keras.applications.resnet50.preprocess_input(x))
    features = model.predict(ds, verbose=0)
    with h5py.File(args.out, "w") as h:
        h["train"] = features
        h["label"] = labels
    bench_common.report(len(features), start)


if __name__ == "__main__":
    main()
