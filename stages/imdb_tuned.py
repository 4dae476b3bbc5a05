"""Stage `imdb_tuned`: the report 000 §3 classifier, trained for the number of epochs a validation part chose.

Beyond the report. Reads data/imdb/tfidf/, params `imdb_tuned` (imdb_train's
keys plus `validation_fraction`), `train` (lr, seed, device, threads) and
`data.imdb.source`. Two runs of the same settings and seed:

1. the validation run trains on the training split less a stratified
   `validation_fraction`, scoring that held-out part after every epoch; the
   epoch with the best validation accuracy (the earliest on a tie) is chosen;
2. the final run trains on the whole training split for the chosen number of
   epochs, scoring the test split after each (the test split chooses nothing).

Writes models/imdb_tuned/ (the final run's model), plots/imdb_tuned/history.csv
(the final run: train and test loss and accuracy per epoch), validation.csv
(the validation run: train and validation loss and accuracy per epoch, and
which epoch was chosen) and validation.png. `imdb_evaluate --model imdb_tuned`
(stage `imdb_tuned_evaluate`) scores the saved model.
"""
from __future__ import annotations

import dataclasses

from nnlab import plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets import imdb
from nnlab.io import StageOutputs
from nnlab.models import sentiment
from nnlab.params import load_params, seed, train_settings
from nnlab.runtime import torch_device
from nnlab import memory
from nnlab.stage_config import classifier_config, classifier_memory

FEATURES = "data/imdb/tfidf"
MODEL = "models/imdb_tuned"
PLOTS = "plots/imdb_tuned"


def chosen_epoch(validation_history: list[dict], epochs: int) -> int:
    """The epoch of the best validation accuracy, the earliest on a tie; ``epochs`` when the validation
    run diverged before scoring any epoch (the final run then records its own divergence)."""
    if not validation_history:
        return epochs
    return max(validation_history, key=lambda row: (row["validation_accuracy"], -row["epoch"]))["epoch"]


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section("imdb_tuned")
    config = classifier_config(params, cfg)
    validation_fraction = cfg.float("validation_fraction", min=0.01, max=0.99)
    cfg.check_all_used()
    memory.check(classifier_memory(cfg, config, f"{FEATURES}/X_train.npz"))
    source = params.section("data").section("imdb").str("source", choices=imdb.SOURCES)
    settings = train_settings(params)
    device = torch_device(settings.device)
    run_seed = seed(params)

    X_train, y_train, X_test, y_test = imdb.load_features(FEATURES)
    fit, held_out = imdb.validation_split(y_train, validation_fraction, run_seed)
    cfg.batch_size("batch_size", len(fit), allow_full=False)
    validation_run = sentiment.train_classifier(
        X_train[fit], y_train[fit], X_train[held_out], y_train[held_out], config, seed=run_seed, device=device,
        desc="imdb_tuned validation", threads=settings.threads)
    validation_history = [{"epoch": row["epoch"], "train_loss": row["train_loss"],
                           "train_accuracy": row["train_accuracy"], "validation_loss": row["test_loss"],
                           "validation_accuracy": row["test_accuracy"]}
                          for row in validation_run.result.history]
    epochs = chosen_epoch(validation_history, config.epochs)
    print(f"imdb_tuned: epoch {epochs} of {config.epochs} has the best validation accuracy")
    final_config = dataclasses.replace(config, epochs=epochs)
    training = sentiment.train_classifier(X_train, y_train, X_test, y_test, final_config, seed=run_seed,
                                          device=device, desc="imdb_tuned", threads=settings.threads)
    figure = plotting.curves(
        [row["epoch"] for row in validation_history],
        {f"{split} accuracy": [row[f"{split}_accuracy"] for row in validation_history]
         for split in ("train", "validation")},
        title=f"{imdb.describe(source, X_train.shape[0] + X_test.shape[0])}\n"
              f"IMDB classifier, validation run ({config.optimizer}, lr {config.lr:g}): epoch {epochs} chosen",
        xlabel="epoch", ylabel="accuracy")
    with StageOutputs() as out:
        sentiment.save_model(out.directory(MODEL), training, final_config, n_features=X_train.shape[1],
                             source=source)
        out.csv(f"{PLOTS}/history.csv", training.result.history
                or [{"epoch": 0, "train_loss": None, "train_accuracy": None, "test_loss": None, "test_accuracy": None}])
        out.csv(f"{PLOTS}/validation.csv", [{**row, "chosen": row["epoch"] == epochs} for row in validation_history]
                or [{"epoch": 0, "train_loss": None, "train_accuracy": None, "validation_loss": None,
                     "validation_accuracy": None, "chosen": False}])
        out.figure(f"{PLOTS}/validation.png", figure)
    result = training.result
    print(f"imdb_tuned: diverged at epoch {result.diverged_at}" if result.diverged else
          f"imdb_tuned: {result.trained} epochs, test accuracy {result.history[-1]['test_accuracy']:.4f}")


if __name__ == "__main__":
    run(main)
