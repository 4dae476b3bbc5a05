"""Stage `imdb_logreg`: scikit-learn's LogisticRegression on the classifier's TF-IDF features (a reference row).

Beyond the report: a linear model on the very features the network reads, so
that RESULTS.md shows what the hidden layers add. Reads data/imdb/tfidf/,
params `imdb_logreg` (C, max_iter) and `data.imdb.source`;
writes models/imdb_logreg/ (coefficients and intercept, spec.json) and
metrics/imdb_logreg.json (the metrics schema of nnlab/results.py: train and
test accuracy and log loss, test F1 and per-class recall; `trained` counts
lbfgs iterations, unit step).
"""
from __future__ import annotations

from nnlab.cli import run, stage_parser
from nnlab.datasets import imdb
from nnlab.io import StageOutputs
from nnlab.models import sentiment_linear
from nnlab.params import load_params

FEATURES = "data/imdb/tfidf"
MODEL = "models/imdb_logreg"
METRICS = "metrics/imdb_logreg.json"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section("imdb_logreg")
    C = cfg.float("C", positive=True)
    max_iter = cfg.int("max_iter", min=1)
    cfg.check_all_used()
    source = params.section("data").section("imdb").str("source", choices=imdb.SOURCES)

    X_train, y_train, X_test, y_test = imdb.load_features(FEATURES)
    model = sentiment_linear.fit(X_train, y_train, C=C, max_iter=max_iter)
    metrics = sentiment_linear.run_metrics(model, source, X_train, y_train, X_test, y_test)
    with StageOutputs() as out:
        sentiment_linear.save_model(out.directory(MODEL), model, source=source)
        out.json(METRICS, metrics)
    print(f"imdb_logreg: {metrics['trained']} lbfgs iterations, train accuracy {metrics['train']['accuracy']:.4f},"
          f" test accuracy {metrics['test']['accuracy']:.4f}, F1 {metrics['test']['f1']:.4f}")


if __name__ == "__main__":
    run(main)
