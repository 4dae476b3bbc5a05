"""Stage `imdb_logreg`: scikit-learn's LogisticRegression on the classifier's TF-IDF features (a reference row).

Beyond the report: a linear model on the very features the network reads, so
that RESULTS.md shows what the hidden layers add. Reads data/imdb/tfidf/,
params `imdb_logreg` (C, max_iter) and `data.imdb.source`;
writes models/imdb_logreg/ (coefficients and intercept, spec.json),
metrics/imdb_logreg.json (the headline: train and test accuracy, test F1),
plots/imdb_logreg/evaluation.json (every score: log losses, per-class recall;
`trained` counts lbfgs iterations, unit step) and confusion.json (test split).
"""
from __future__ import annotations

from nnlab.cli import run, stage_parser
from nnlab.datasets import imdb
from nnlab.io import StageOutputs
from nnlab.metrics import confusion_records
from nnlab.models import sentiment_linear
from nnlab.params import load_params
from nnlab.results import write_evaluation

FEATURES = "data/imdb/tfidf"
NAME = "imdb_logreg"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    C = cfg.float("C", positive=True)
    max_iter = cfg.int("max_iter", min=1)
    cfg.check_all_used()
    source = params.section("data").section("imdb").str("source", choices=imdb.SOURCES)

    X_train, y_train, X_test, y_test = imdb.load_features(FEATURES)
    model = sentiment_linear.fit(X_train, y_train, C=C, max_iter=max_iter)
    evaluation, predicted = sentiment_linear.run_evaluation(model, source, X_train, y_train, X_test, y_test)
    with StageOutputs() as out:
        sentiment_linear.save_model(out.directory(f"models/{NAME}"), model, source=source)
        write_evaluation(out, NAME, evaluation, confusion_records(y_test, predicted, imdb.SENTIMENTS))
    test = evaluation["test"]
    print(f"imdb_logreg: {evaluation['trained']} lbfgs iterations, train accuracy {evaluation['train']['accuracy']:.4f},"
          f" test accuracy {test['accuracy']:.4f}, F1 {test['f1']:.4f}")


if __name__ == "__main__":
    run(main)
