"""Keras' side of the heads benchmark: the same heads, data shape, batch and optimizer as
`cargo bench -p imgclf-heads --bench heads`, timed per epoch on this machine.

    .venv-keras/bin/python tools/bench_keras_heads.py [ROWS DIM EPOCHS]

(`./just keras-backbones` makes .venv-keras with TensorFlow-CPU 2.15.)
"""

import sys
import time

import numpy as np
import tensorflow as tf


class EpochTimer(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def main():
    rows, dim, epochs = (int(a) for a in (sys.argv[1:] + ["20000", "6144", "8"][len(sys.argv) - 1:])[:3])
    rng = np.random.default_rng(1)
    y = np.arange(rows) % 2
    x = rng.random((rows, dim), dtype=np.float32)
    x[:, ::7] += 0.1 * y[:, None]
    print(f"{rows} x {dim} random features, batch 128, {epochs} epochs, adadelta (TensorFlow {tf.__version__})")
    for name in ["logistic", "mlp-256"]:
        inputs = tf.keras.Input((dim,))
        h = inputs
        if name == "logistic":
            h = tf.keras.layers.Dropout(0.5)(h)
        else:
            h = tf.keras.layers.Dense(256, activation="relu")(h)
            h = tf.keras.layers.Dropout(0.5)(h)
        model = tf.keras.Model(inputs, tf.keras.layers.Dense(1, activation="sigmoid")(h))
        model.compile(optimizer=tf.keras.optimizers.Adadelta(learning_rate=1.0), loss="binary_crossentropy", metrics=["accuracy"])
        timer = EpochTimer()
        timer.seconds = []
        started = time.perf_counter()
        model.fit(x, y, batch_size=128, epochs=epochs, verbose=0, callbacks=[timer])
        total = time.perf_counter() - started
        steady = sum(timer.seconds[1:]) / max(1, len(timer.seconds) - 1)
        per_epoch = " ".join(f"{s:.3f}" for s in timer.seconds)
        print(f"{name:>9}: {total / epochs:.3f} s/epoch (total {total:.2f} s; after the first {steady:.3f}; epochs {per_epoch})")


if __name__ == "__main__":
    main()
