"""Stage `imdb_study`: the report 000 §3.2-§3.5 variants of the IMDB classifier.

Reads data/imdb/tfidf/ and params `imdb_study` (each variant overrides some of
`imdb_train`'s values: lr, activation, batch_size, init, optimizer,
weight_decay), `imdb_train` and
`train`; trains every variant, `n_jobs` at a time (on one thread each when
several run at once, else on `train.threads`); writes
metrics/imdb_study.json (the best variant and how many diverged),
plots/imdb_study/table.csv (one row per variant: settings, train and test
accuracy, test F1, the report's test accuracy, seconds),
history.csv (a row per variant and epoch: train loss and accuracy, test
accuracy; a diverged variant's last row marks the epoch it diverged at),
accuracy.png (ours beside the report's) and loss.png.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from nnlab import plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets import imdb
from nnlab.io import StageOutputs
from nnlab.models.sentiment import ACTIVATIONS, INITS, OPTIMIZERS, ClassifierConfig, run_metrics, train_classifier
from nnlab.params import Section, load_params, seed, train_settings
from nnlab.report import load_references, report_figure
from nnlab.results import long_history, study_summary
from nnlab.runtime import torch_device
from nnlab import memory
from nnlab.stage_config import classifier_config, classifier_memory

FEATURES = "data/imdb/tfidf"
PLOTS = "plots/imdb_study"
METRICS = "metrics/imdb_study.json"
HISTORY_COLUMNS = ("train_loss", "train_accuracy", "test_accuracy")
REFERENCES = "references.yaml"   # the report's figure for each variant


def variant(base: ClassifierConfig, cfg: Section) -> ClassifierConfig:
    """The base config with this variant's overrides."""
    config = dataclasses.replace(
        base,
        lr=cfg.float("lr", positive=True, default=base.lr),
        activation=cfg.str("activation", choices=ACTIVATIONS, default=base.activation),
        batch_size=cfg.int("batch_size", min=1, default=base.batch_size),
        init=cfg.str("init", choices=INITS, default=base.init),
        optimizer=cfg.str("optimizer", choices=OPTIMIZERS, default=base.optimizer),
        weight_decay=cfg.float("weight_decay", min=0.0, default=base.weight_decay),
    )
    cfg.check_all_used()
    return config


def train_variant(name: str, config: ClassifierConfig, data, source: str, run_seed: int, device,
                  threads: int) -> dict:
    X_train, y_train, X_test, y_test = data
    started = time.perf_counter()
    training = train_classifier(X_train, y_train, X_test, y_test, config, seed=run_seed, device=device,
                                desc=name, log=lambda line: print(f"{name} {line}"), threads=threads)
    metrics, _ = run_metrics(training, source, X_train, y_train, X_test, y_test, device)
    return {"metrics": metrics, "history": training.result.history, "diverged_at": training.result.diverged_at,
            "seconds": time.perf_counter() - started}


def main(argv=None) -> None:
    from joblib import Parallel, delayed

    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    base_cfg = params.section("imdb_train")
    base = classifier_config(params, base_cfg)
    base_cfg.check_all_used()
    cfg = params.section("imdb_study")
    n_jobs = cfg.int("n_jobs", min=1)
    variants_cfg = cfg.section("variants")
    variants = {name: variant(base, variants_cfg.section(name)) for name in variants_cfg.keys()}
    variants_cfg.check_all_used()
    cfg.check_all_used()
    side_by_side = min(n_jobs, len(variants))
    configs = [*variants.values(), base]
    largest = dataclasses.replace(base, batch_size=max(config.batch_size for config in configs),
                                  optimizer="adam" if any(config.optimizer == "adam" for config in configs)
                                  else base.optimizer)   # the variant that needs the most, roughly
    memory.check(classifier_memory(base_cfg, largest, f"{FEATURES}/X_train.npz", copies=side_by_side),
                 memory.workers(cfg, "n_jobs", side_by_side if side_by_side > 1 else 0))
    settings = train_settings(params)
    device = torch_device(settings.device)
    # Variants trained side by side would only fight over the cores with more than one thread each.
    threads = settings.threads if n_jobs == 1 else 1
    run_seed = seed(params)
    source = params.section("data").section("imdb").str("source", choices=imdb.SOURCES)

    data = imdb.load_features(FEATURES)
    n_train = data[0].shape[0]
    base_cfg.batch_size("batch_size", n_train, allow_full=False)
    for name in variants:
        if "batch_size" in variants_cfg.section(name).keys():
            variants_cfg.section(name).batch_size("batch_size", n_train, allow_full=False)
    runs = Parallel(n_jobs=n_jobs)(
        delayed(train_variant)(name, config, data, source, run_seed, device, threads)
        for name, config in variants.items())
    results = dict(zip(variants, runs))
    described = imdb.describe(source, data[0].shape[0] + data[2].shape[0])

    table = []
    references = load_references(Path(REFERENCES))
    for name, config in variants.items():
        report = report_figure(references, [f"{PLOTS}/table.csv", {"variant": name}, "test_accuracy"])
        evaluation = results[name]["metrics"]
        table.append({"variant": name, "lr": config.lr, "activation": config.activation,
                      "batch_size": config.batch_size, "init": config.init,
                      "train_accuracy": evaluation["train"]["accuracy"],
                      "test_accuracy": evaluation["test"]["accuracy"], "test_f1": evaluation["test"]["f1"],
                      "report_test_accuracy": report, "diverged": results[name]["metrics"]["diverged"],
                      "seconds": round(results[name]["seconds"], 1)})
    history = long_history({name: r["history"] for name, r in results.items()},
                           {name: r["diverged_at"] for name, r in results.items()}, "epoch", HISTORY_COLUMNS)
    accuracy_figure = plotting.bar_chart(
        {row["variant"]: {"ours": "diverged" if row["diverged"] else row["test_accuracy"],
                          "report": row["report_test_accuracy"] or "not run"}
         for row in table}, title=f"IMDB classifier variants: test accuracy\n{described}", ylabel="accuracy",
        width_inches=10)
    loss_figure = plotting.run_curves(history, "epoch", "train_loss",
                                      title=f"IMDB classifier variants: train loss\n{described}", ylabel="BCE loss")

    with StageOutputs() as out:
        out.json(METRICS, study_summary(table, "variant", source=source))
        out.csv(f"{PLOTS}/table.csv", table)
        out.csv(f"{PLOTS}/history.csv", history)
        out.figure(f"{PLOTS}/accuracy.png", accuracy_figure)
        out.figure(f"{PLOTS}/loss.png", loss_figure)
    for row in table:
        ours = "diverged" if row["diverged"] else f"{row['test_accuracy']:.4f}"
        print(f"{row['variant']:>11}: test accuracy {ours} (report {row['report_test_accuracy']}), {row['seconds']} s")


if __name__ == "__main__":
    run(main)
