"""Keras' side of the augmentation benchmark: ImageDataGenerator with the tutorial's settings
over the same number of random 150 x 150 RGB images, `flow` in batches of 32, timed on this
machine (numpy/scipy: one core).

    .venv-keras/bin/python tools/bench_keras_augment.py [IMAGES ROUNDS]
"""

import sys
import time

import numpy as np
from tensorflow.keras.preprocessing.image import ImageDataGenerator


def main():
    count, rounds = (int(a) for a in (sys.argv[1:] + ["256", "8"][len(sys.argv) - 1:])[:2])
    x = np.random.default_rng(1).integers(0, 256, (count, 150, 150, 3)).astype(np.float32)
    gen = ImageDataGenerator(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2,
                             zoom_range=0.2, horizontal_flip=True, fill_mode="nearest")
    flow = gen.flow(x, batch_size=32, shuffle=False, seed=7)
    batches = rounds * count // 32
    started = time.perf_counter()
    for _ in range(batches):
        next(flow)
    seconds = time.perf_counter() - started
    print(f"{batches * 32} augmented 150x150 images: {batches * 32 / seconds:.0f} images/s (Keras ImageDataGenerator.flow, one core)")


if __name__ == "__main__":
    main()
