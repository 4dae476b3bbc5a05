"""scikit-learn's ``LogisticRegression`` on the IMDB TF-IDF features: the linear reference for the
report 000 classifier (:mod:`nnlab.models.sentiment`), scored in the same metrics schema."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nnlab import artifacts
from nnlab.datasets.imdb import SENTIMENTS as CLASSES
from nnlab.results import classifier_scores, model_evaluation

KIND = "imdb_logreg"


def fit(X_train, y_train, *, C: float, max_iter: int):
    """L2-penalised logistic regression by lbfgs, which draws nothing at random: no seed to set."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=max_iter).fit(X_train, y_train)


def split_scores(model, X, y, *, train: bool = False) -> tuple[dict, np.ndarray]:
    """A split's scores in the schema of :mod:`nnlab.results` (the loss is the log loss, BCE), and the
    predicted class of every row."""
    from sklearn.metrics import log_loss

    probabilities = model.predict_proba(X)
    predicted = probabilities.argmax(axis=1)
    return (classifier_scores(y, predicted, CLASSES, log_loss(y, probabilities, labels=[0, 1]), train=train),
            predicted)


def run_evaluation(model, source: str, X_train, y_train, X_test, y_test) -> tuple[dict, np.ndarray]:
    """The full evaluation record of :func:`nnlab.results.model_evaluation`, and the test predictions."""
    iterations = int(np.max(model.n_iter_))
    run = {"diverged": False, "diverged_at": None, "trained": iterations, "unit": "step"}
    train, _ = split_scores(model, X_train, y_train, train=True)
    test, predicted = split_scores(model, X_test, y_test)
    return model_evaluation(source, run, train, test), predicted


def save_model(directory: Path, model, *, source: str) -> None:
    """The coefficients and intercept, and what they were fitted with (see :mod:`nnlab.artifacts`)."""
    artifacts.save_arrays(directory, {"coef": model.coef_, "intercept": model.intercept_})
    artifacts.write_spec(directory, KIND, classes=list(CLASSES), source=source, params=model.get_params(),
                         iterations=int(np.max(model.n_iter_)))


def load_model(directory: str | Path, stage: str = KIND):
    """The classifier :func:`save_model` wrote, rebuilt so that ``predict_proba`` gives what the fitted one
    gave, and its spec."""
    from sklearn.linear_model import LogisticRegression

    spec = artifacts.read_spec(directory, KIND, stage)
    arrays = artifacts.load_arrays(directory)
    model = LogisticRegression(**spec["params"])
    model.coef_, model.intercept_ = arrays["coef"], arrays["intercept"]
    model.classes_ = np.arange(len(spec["classes"]))
    return model, spec
