"""Stages `imdb_evaluate` and `imdb_tuned_evaluate`: score a trained sentiment classifier (report 000 §3).

Run as `python -m stages.imdb_evaluate --model <model>`, the model being
imdb_train (the report's protocol) or imdb_tuned. Reads models/<model>/,
data/imdb/tfidf/ and plots/<model>/history.csv; writes metrics/<model>.json
(the headline: train and test accuracy, test F1), plots/<model>/evaluation.json
(every score: BCE losses, per-class recall, how the run ended),
plots/<model>/confusion.json (test split), roc.csv and precision_recall.csv
(test split, scikit-learn's curves), and the training curves loss.png and
accuracy.png. Retrains nothing.
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
from nnlab.results import TrainResult, write_evaluation

FEATURES = "data/imdb/tfidf"
MODELS = ("imdb_train", "imdb_tuned")


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, choices=MODELS)
    args = parser.parse_args(argv)
    plots = f"plots/{args.model}"
    model, spec = sentiment.load_model(f"models/{args.model}")
    X_train, y_train, X_test, y_test = imdb.load_features(FEATURES)
    history = pd.read_csv(f"{plots}/history.csv").to_dict("records")
    # On the CPU wherever the model was trained: the same figures on every machine.
    training = sentiment.Training(model, TrainResult.from_run_record(spec["run"], history), [])
    evaluation, probabilities = sentiment.run_metrics(training, spec["source"], X_train, y_train, X_test, y_test,
                                                      torch.device("cpu"))
    config = spec["config"]
    described = imdb.describe(spec["source"], X_train.shape[0] + X_test.shape[0])
    figures = plotting.split_curves(
        history, x="epoch", metrics=("loss", "accuracy"),
        title=f"{described}\nIMDB classifier ({config['activation']}, {config['optimizer']} lr {config['lr']:g}, "
              f"batch {config['batch_size']})")
    with StageOutputs() as out:
        predicted = None if probabilities is None else (probabilities >= 0.5).astype(int)
        write_evaluation(out, args.model, evaluation, confusion_records(y_test, predicted, imdb.SENTIMENTS))
        roc, precision_recall = curve_rows(y_test, probabilities)
        out.csv(f"{plots}/roc.csv", roc)
        out.csv(f"{plots}/precision_recall.csv", precision_recall)
        for name, figure in figures.items():
            out.figure(f"{plots}/{name}.png", figure)
    test = evaluation["test"]
    print(f"imdb_evaluate {args.model}: diverged" if evaluation["diverged"] else
          f"imdb_evaluate {args.model}: train accuracy {evaluation['train']['accuracy']:.4f}, test accuracy {test['accuracy']:.4f},"
          f" F1 {test['f1']:.4f}")


if __name__ == "__main__":
    run(main)
