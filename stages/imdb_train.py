"""Stage `imdb_train`: the three-layer PyTorch sentiment classifier on TF-IDF (report 000 §3).

Reads data/imdb/tfidf/ and params `imdb_train`, `train` (lr, seed, device);
writes metrics/imdb_train.json (train and test accuracy, precision, recall,
F1, loss, confusion matrix), plots/imdb_train/history.csv (train and test
loss per epoch), running_loss.csv (every `log_every` mini-batches, as the
report printed it), confusion.json (test split) and loss.png.
"""
from __future__ import annotations

import sys

from nnlab import plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets import imdb
from nnlab.io import StageOutputs
from nnlab.metrics import confusion_records
from nnlab.models.sentiment import ACTIVATIONS, INITS, ClassifierConfig, run_metrics, train_classifier
from nnlab.params import Section, learning_rate, load_params, seed
from nnlab.runtime import torch_device

FEATURES = "data/imdb/tfidf"
PLOTS = "plots/imdb_train"


def classifier_config(params: Section, cfg: Section) -> ClassifierConfig:
    hidden = cfg.int_list("hidden_units")
    if len(hidden) != 2:
        raise cfg.fail("hidden_units", hidden, "three FC layers take exactly two hidden sizes, e.g. \"64,32\"")
    return ClassifierConfig(
        hidden_units=tuple(hidden), activation=cfg.str("activation", choices=ACTIVATIONS),
        init=cfg.str("init", choices=INITS), lr=learning_rate(params, cfg),
        # Only >= 1 here, before the data are read: main checks it against the training reviews.
        batch_size=cfg.batch_size("batch_size", sys.maxsize, allow_full=False), epochs=cfg.int("epochs", min=1),
        log_every=cfg.int("log_every", min=1),
    )


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section("imdb_train")
    config = classifier_config(params, cfg)
    cfg.check_all_used()
    device = torch_device(params.section("train").str("device"))

    X_train, y_train, X_test, y_test = imdb.load_features(FEATURES)
    cfg.batch_size("batch_size", X_train.shape[0], allow_full=False)
    result = train_classifier(X_train, y_train, X_test, y_test, config, seed=seed(params), device=device)
    metrics, predicted = run_metrics(result, X_train, y_train, X_test, y_test, device)
    figure = plotting.split_curves(
        result.history, x="epoch", metrics=("loss",),
        title=f"IMDB classifier ({config.activation}, lr {config.lr}, batch {config.batch_size}), BCE")["loss"]

    with StageOutputs() as out:
        out.json("metrics/imdb_train.json", metrics)
        out.csv(f"{PLOTS}/history.csv", result.history or [{"epoch": 0, "train_loss": None, "test_loss": None}])
        out.csv(f"{PLOTS}/running_loss.csv", result.running_loss or [{"step": 0, "epoch": 0, "running_loss": None}])
        out.json(f"{PLOTS}/confusion.json",
                 confusion_records(y_test, predicted["test"], imdb.SENTIMENTS) if predicted else [])
        out.figure(f"{PLOTS}/loss.png", figure)
    test = metrics["test"]
    if metrics["diverged"]:
        print("imdb_train: diverged")
    else:
        print(f"imdb_train: train accuracy {metrics['train']['accuracy']:.4f}, test accuracy {test['accuracy']:.4f},"
              f" precision {test['precision']:.4f}, recall {test['recall']:.4f}, F1 {test['f1']:.4f}")


if __name__ == "__main__":
    run(main)
