"""Stage `imdb_evaluate`: score the trained sentiment classifier (report 000 §3).

Reads models/imdb_train/, data/imdb/tfidf/ and plots/imdb_train/history.csv;
writes metrics/imdb_train.json (the headline: train and test accuracy, test
F1), plots/imdb_train/evaluation.json (every score: BCE losses, per-class
recall, how the run ended), plots/imdb_train/confusion.json (test split), roc.csv
and precision_recall.csv (test split, scikit-learn's curves), and the training
curves loss.png and accuracy.png. Retrains nothing.
"""
from __future__ import annotations

import pandas as pd
import torch

from nnlab import plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets import imdb
from nnlab.io import StageOutputs
from nnlab.metrics import confusion_records, curve_rows
from nnlab.models import sentiment
from nnlab.results import TrainResult, model_metrics

FEATURES = "data/imdb/tfidf"
MODEL = "models/imdb_train"
PLOTS = "plots/imdb_train"


def main(argv=None) -> None:
    stage_parser(__doc__).parse_args(argv)
    model, spec = sentiment.load_model(MODEL)
    X_train, y_train, X_test, y_test = imdb.load_features(FEATURES)
    history = pd.read_csv(f"{PLOTS}/history.csv").to_dict("records")
    # On the CPU wherever the model was trained: the same figures on every machine.
    training = sentiment.Training(model, TrainResult.from_run_record(spec["run"], history), [])
    evaluation, probabilities = sentiment.run_metrics(training, spec["source"], X_train, y_train, X_test, y_test,
                                                      torch.device("cpu"))
    config = spec["config"]
    figures = plotting.split_curves(
        history, x="epoch", metrics=("loss", "accuracy"),
        title=f"IMDB classifier ({config['activation']}, lr {config['lr']:g}, batch {config['batch_size']})")
    with StageOutputs() as out:
        out.json("metrics/imdb_train.json", model_metrics(evaluation))
        out.json(f"{PLOTS}/evaluation.json", evaluation)
        predicted = [] if probabilities is None else (probabilities >= 0.5).astype(int)
        out.json(f"{PLOTS}/confusion.json", confusion_records(y_test, predicted, imdb.SENTIMENTS))
        roc, precision_recall = curve_rows(y_test, probabilities)
        out.csv(f"{PLOTS}/roc.csv", roc)
        out.csv(f"{PLOTS}/precision_recall.csv", precision_recall)
        for name, figure in figures.items():
            out.figure(f"{PLOTS}/{name}.png", figure)
    test = evaluation["test"]
    print("imdb_evaluate: diverged" if evaluation["diverged"] else
          f"imdb_evaluate: train accuracy {evaluation['train']['accuracy']:.4f}, test accuracy {test['accuracy']:.4f},"
          f" F1 {test['f1']:.4f}")


if __name__ == "__main__":
    run(main)
