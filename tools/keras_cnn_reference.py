#!/usr/bin/env python3
"""The tutorial's small CNN and LeNet in Keras itself: the reference `imgclf train-cnn` is
measured against (accuracy, seconds per epoch), and the source of the layer summaries in
fixtures/nets/keras_summaries.json.

    python tools/keras_cnn_reference.py train --arch lenet --data ../shared/data/traffic_signs --epochs 35
    python tools/keras_cnn_reference.py train --arch small --data ../shared/data/cats_dogs --epochs 2
    python tools/keras_cnn_reference.py summaries fixtures/nets/keras_summaries.json
    python tools/keras_cnn_reference.py gradients --data ../shared/data/cats_dogs fixtures/nets/small_cnn_gradients.safetensors

Needs TensorFlow 2.15 (`.venv-keras`, made by `./just keras-backbones`). Prints one JSON line per epoch
and a final one with the run's numbers.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.keras import layers, models  # noqa: E402
from tensorflow.keras.preprocessing.image import ImageDataGenerator  # noqa: E402


def small_cnn(size):
    """The tutorial's "very little data" net, as written there."""
    m = models.Sequential([tf.keras.Input((size, size, 3))])
    for filters in (32, 32, 64):
        m.add(layers.Conv2D(filters, (3, 3)))
        m.add(layers.Activation("relu"))
        m.add(layers.MaxPooling2D(pool_size=(2, 2)))
    m.add(layers.Flatten())
    m.add(layers.Dense(64))
    m.add(layers.Activation("relu"))
    m.add(layers.Dropout(0.5))
    m.add(layers.Dense(1))
    m.add(layers.Activation("sigmoid"))
    return m


def lenet(size, classes):
    """The tutorial's LeNet (pyimagesearch's build())."""
    m = models.Sequential([tf.keras.Input((size, size, 3))])
    m.add(layers.Conv2D(20, (5, 5), padding="same"))
    m.add(layers.Activation("relu"))
    m.add(layers.MaxPooling2D(pool_size=(2, 2), strides=(2, 2)))
    m.add(layers.Conv2D(50, (5, 5), padding="same"))
    m.add(layers.Activation("relu"))
    m.add(layers.MaxPooling2D(pool_size=(2, 2), strides=(2, 2)))
    m.add(layers.Flatten())
    m.add(layers.Dense(500))
    m.add(layers.Activation("relu"))
    m.add(layers.Dense(classes))
    m.add(layers.Activation("softmax"))
    return m


def lenet_variant(size, classes):
    """LeNet with imgclf's `--batch-norm --dropout 0.5`: BatchNormalization after each conv,
    Dropout(0.5) before the output layer."""
    m = models.Sequential([tf.keras.Input((size, size, 3))])
    for filters in (20, 50):
        m.add(layers.Conv2D(filters, (5, 5), padding="same"))
        m.add(layers.BatchNormalization())
        m.add(layers.Activation("relu"))
        m.add(layers.MaxPooling2D(pool_size=(2, 2), strides=(2, 2)))
    m.add(layers.Flatten())
    m.add(layers.Dense(500))
    m.add(layers.Activation("relu"))
    m.add(layers.Dropout(0.5))
    m.add(layers.Dense(classes))
    m.add(layers.Activation("softmax"))
    return m


def summary(model):
    return {
        "layers": [
            {"kind": l.__class__.__name__, "output_shape": list(l.output_shape[1:]), "params": int(l.count_params())}
            for l in model.layers
        ],
        "total_params": int(model.count_params()),
    }


def load_split(root, size):
    """Every image of root/<class>/ resized to size x size (bilinear), as float 0..255."""
    from PIL import Image

    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    xs, ys = [], []
    for label, c in enumerate(classes):
        for name in sorted(os.listdir(os.path.join(root, c))):
            img = Image.open(os.path.join(root, c, name)).convert("RGB").resize((size, size), Image.BILINEAR)
            xs.append(np.asarray(img, dtype=np.float32))
            ys.append(label)
    return np.stack(xs), np.array(ys), classes


class EpochLog(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - self.start, 2)}
        row.update({k: round(float(v), 4) for k, v in (logs or {}).items()})
        print(json.dumps(row), flush=True)


def train(args):
    tf.keras.utils.set_random_seed(args.seed)
    log = EpochLog()
    if args.arch == "lenet":
        size = args.size or 32
        x, y, classes = load_split(os.path.join(args.data, "train"), size)
        test = "validation" if os.path.isdir(os.path.join(args.data, "validation")) else "test"
        tx, ty, _ = load_split(os.path.join(args.data, test), size)
        x, tx = x / 255.0, tx / 255.0
        y1, ty1 = tf.keras.utils.to_categorical(y, len(classes)), tf.keras.utils.to_categorical(ty, len(classes))
        model = lenet(size, len(classes))
        opt = tf.keras.optimizers.legacy.Adam(learning_rate=1e-3, decay=1e-3 / args.epochs)
        model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
        aug = ImageDataGenerator(rotation_range=30, width_shift_range=0.1, height_shift_range=0.1,
                                 shear_range=0.2, zoom_range=0.2, fill_mode="nearest")
        started = time.perf_counter()
        model.fit(aug.flow(x, y1, batch_size=32), validation_data=(tx, ty1), steps_per_epoch=len(x) // 32,
                  epochs=args.epochs, verbose=0, callbacks=[log])
        images = len(x)
        _, acc = model.evaluate(tx, ty1, verbose=0)
    else:
        size = args.size or 150
        gen = ImageDataGenerator(rescale=1.0 / 255, shear_range=0.2, zoom_range=0.2, horizontal_flip=True)
        flow = gen.flow_from_directory(os.path.join(args.data, "train"), target_size=(size, size), batch_size=32,
                                       class_mode="binary", seed=args.seed)
        val = ImageDataGenerator(rescale=1.0 / 255).flow_from_directory(
            os.path.join(args.data, "validation"), target_size=(size, size), batch_size=32, class_mode="binary",
            shuffle=False)
        model = small_cnn(size)
        model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
        started = time.perf_counter()
        model.fit(flow, epochs=args.epochs, validation_data=val, verbose=0, callbacks=[log])
        images = flow.n
        _, acc = model.evaluate(val, verbose=0)
    seconds = time.perf_counter() - started
    print(json.dumps({"arch": args.arch, "epochs": args.epochs, "val_acc": round(float(acc), 4),
                      "seconds": round(seconds, 1), "seconds_per_epoch": round(seconds / args.epochs, 2),
                      "train_images_per_s": round(images * args.epochs / seconds, 1),
                      "tensorflow": tf.__version__, "threads": os.cpu_count()}))


def write_safetensors(path, tensors):
    """`tensors` (name -> float32 array) in the safetensors format, which candle reads."""
    header, offset, blobs = {}, 0, []
    for name, value in tensors.items():
        blob = np.ascontiguousarray(value, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))


def gradients(args):
    """One step of the small CNN in Keras on real photos: the weights, the batch, the loss,
    every gradient and the weights after one RMSprop step (Keras' defaults), in imgclf's
    layout (NCHW batch, (out, in, k, k) kernels, the dense kernel's rows in channels-first
    flattening order) for crates/nets/tests/keras_gradients.rs. Dropout is off (inference),
    as the test's forward pass; the photos are resized as flow_from_directory does."""
    from PIL import Image

    tf.keras.utils.set_random_seed(args.seed)
    size, per_class = args.size, args.images // 2
    xs, ys = [], []
    for label, c in enumerate(sorted(os.listdir(os.path.join(args.data, "train")))):
        folder = os.path.join(args.data, "train", c)
        for name in sorted(os.listdir(folder))[:per_class]:
            img = Image.open(os.path.join(folder, name)).convert("RGB").resize((size, size), Image.NEAREST)
            xs.append(np.asarray(img, dtype=np.float32) / 255.0)
            ys.append(label)
    x, y = np.stack(xs), np.array(ys, dtype=np.float32)[:, None]
    model = small_cnn(size)
    with tf.GradientTape() as tape:
        loss = tf.keras.losses.binary_crossentropy(y, model(x, training=False))
        loss = tf.reduce_mean(loss)
    grads = tape.gradient(loss, model.trainable_variables)
    before = [v.numpy() for v in model.trainable_variables]
    tf.keras.optimizers.RMSprop().apply_gradients(zip(grads, model.trainable_variables))
    after = [v.numpy() for v in model.trainable_variables]
    flat_hw = model.layers[-6].input_shape[1:]  # the Flatten's input (h, w, c)

    def ours(value):
        if value.ndim == 4:  # (k, k, in, out) -> (out, in, k, k)
            return value.transpose(3, 2, 0, 1)
        if value.ndim == 2 and value.shape[0] == np.prod(flat_hw):  # rows (h, w, c) -> (c, h, w)
            return value.reshape(*flat_hw, -1).transpose(2, 0, 1, 3).reshape(value.shape)
        return value

    names = [f"{kind}{i}.{part}" for kind, i in [("conv", 1), ("conv", 2), ("conv", 3), ("dense", 1), ("dense", 2)]
             for part in ("kernel", "bias")]
    tensors = {"x": x.transpose(0, 3, 1, 2), "labels": y[:, 0], "loss": np.array([float(loss)])}
    for name, w, g, w1 in zip(names, before, grads, after):
        tensors[name] = ours(w)
        tensors[f"grad.{name}"] = ours(g.numpy())
        tensors[f"rmsprop.{name}"] = ours(w1)
    write_safetensors(args.out, tensors)
    print(f"wrote {args.out}: loss {float(loss):.6f}, TensorFlow {tf.__version__}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--arch", choices=["small", "lenet"], required=True)
    t.add_argument("--data", required=True)
    t.add_argument("--epochs", type=int, default=35)
    t.add_argument("--size", type=int)
    t.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("summaries")
    s.add_argument("out")
    g = sub.add_parser("gradients")
    g.add_argument("--data", required=True, help="a data root with train/<class>/ folders (two classes)")
    g.add_argument("--size", type=int, default=40)
    g.add_argument("--images", type=int, default=8)
    g.add_argument("--seed", type=int, default=3)
    g.add_argument("out")
    args = p.parse_args()
    if args.cmd == "train":
        train(args)
    elif args.cmd == "gradients":
        gradients(args)
    else:
        out = {"tensorflow": tf.__version__, "small_150": summary(small_cnn(150)), "lenet_32_43": summary(lenet(32, 43)),
               "lenet_48_43": summary(lenet(48, 43)), "lenet_bn_dropout_32_43": summary(lenet_variant(32, 43))}
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
