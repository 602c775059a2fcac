"""The reference a head must reach: scikit-learn's standardised LogisticRegression on the same
feature files that `imgclf train-head` reads, rows aligned by image path.

    .venv/bin/python tools/reference_heads.py features/gap_A.h5 [features/gap_B.h5 ...] [--eval validation]

Trains on `train`, scores the `--eval` split (default: validation, else test) and prints
accuracy and log loss. `./just reference-heads FEATURES...` runs it (scikit-learn is in tools/requirements.txt).
"""

import argparse

import h5py
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def load(files, split):
    """Columns of every file for `split`, rows in the first file's order, matched by path."""
    blocks, order, labels = [], None, None
    for f in files:
        with h5py.File(f, "r") as h:
            paths = [p.decode() if isinstance(p, bytes) else p for p in h[f"{split}_paths"][()]]
            x = h[split][()]
            label_key = "label" if split == "train" else f"{split}_label"
            y = h[label_key][()] if label_key in h else None
        if order is None:
            order, labels = paths, y
            blocks.append(x)
        else:
            row = {p: i for i, p in enumerate(paths)}
            blocks.append(x[[row[p] for p in order]])
    return np.concatenate(blocks, axis=1), labels


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", nargs="+")
    ap.add_argument("--eval", default=None, help="split to score (default: validation if present, else test)")
    ap.add_argument("--C", type=float, default=1.0, help="inverse L2 strength (scikit-learn's default 1.0)")
    args = ap.parse_args()
    with h5py.File(args.features[0], "r") as h:
        split = args.eval or ("validation" if "validation" in h else "test")
    x_train, y_train = load(args.features, "train")
    x_eval, y_eval = load(args.features, split)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=2000))
    model.fit(x_train, y_train)
    p = model.predict_proba(x_eval)
    acc = accuracy_score(y_eval, model.classes_[p.argmax(1)])
    print(f"scikit-learn LogisticRegression(C={args.C}) on standardised features: {split} accuracy {acc:.4f}, "
          f"log loss {log_loss(y_eval, p, labels=model.classes_):.4f} ({len(y_eval)} rows, {x_train.shape[1]} features)")


if __name__ == "__main__":
    main()
