"""Stage `imdb_train`: train the three-layer PyTorch sentiment classifier on TF-IDF (report 000 §3).

Reads data/imdb/tfidf/ and params `imdb_train`, `train` (lr, seed, device) and
`data.imdb.source`; writes models/imdb_train/ (the weights and what rebuilds the
net), plots/imdb_train/history.csv (train and test loss and accuracy per epoch)
and running_loss.csv (every `log_every` mini-batches, as the report printed).
Stage `imdb_evaluate` scores the saved model.

checkpoints/imdb_train.pt holds the run after its last completed epoch: a run
killed or interrupted resumes from it when rerun with the same params and data
(nnlab/checkpoint.py). dvc.yaml declares it `persist: true`, so DVC keeps it
for the rerun.
"""
from __future__ import annotations

from nnlab.checkpoint import Checkpoint
from nnlab.cli import run, stage_parser
from nnlab.datasets import imdb
from nnlab.io import StageOutputs
from nnlab.models import sentiment
from nnlab.params import load_params, seed, train_settings
from nnlab.runtime import torch_device
from nnlab import memory
from nnlab.stage_config import classifier_config, classifier_memory

FEATURES = "data/imdb/tfidf"
MODEL = "models/imdb_train"
CHECKPOINT = "checkpoints/imdb_train.pt"
PLOTS = "plots/imdb_train"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section("imdb_train")
    config = classifier_config(params, cfg)
    cfg.check_all_used()
    memory.check(classifier_memory(cfg, config, f"{FEATURES}/X_train.npz"))
    source = params.section("data").section("imdb").str("source", choices=imdb.SOURCES)
    settings = train_settings(params)
    device = torch_device(settings.device)

    X_train, y_train, X_test, y_test = imdb.load_features(FEATURES)
    cfg.batch_size("batch_size", X_train.shape[0], allow_full=False)
    training = sentiment.train_classifier(X_train, y_train, X_test, y_test, config, seed=seed(params),
                                          device=device, threads=settings.threads,
                                          checkpoint=Checkpoint(CHECKPOINT))
    with StageOutputs() as out:
        sentiment.save_model(out.directory(MODEL), training, config, n_features=X_train.shape[1], source=source)
        out.csv(f"{PLOTS}/history.csv", training.result.history
                or [{"epoch": 0, "train_loss": None, "train_accuracy": None, "test_loss": None, "test_accuracy": None}])
        out.csv(f"{PLOTS}/running_loss.csv", training.running_loss
                or [{"step": 0, "epoch": 0, "running_loss": None}])
    result = training.result
    print(f"imdb_train: diverged at epoch {result.diverged_at}" if result.diverged else
          f"imdb_train: {result.trained} epochs, test accuracy {result.history[-1]['test_accuracy']:.4f}")


if __name__ == "__main__":
    run(main)
