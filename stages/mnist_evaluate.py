"""Stage `mnist_evaluate`: score both linear MNIST classifiers and draw them side by side (report 003).

Reads models/mnist_linear/, models/mnist_torch/, their history.csv,
data/mnist/normalized.npz and the report's test accuracies in references.yaml; writes metrics/mnist_linear.json and
metrics/mnist_torch.json (the headline: train and test accuracy, test
macro-F1), plots/<model>/evaluation.json (every score: losses, the mean
0.5 ||Wx - y||^2, per-digit recall, how the run ended), plots/<model>/confusion.json
(test split) and curves.png, and plots/mnist_torch/comparison.png (the report's
bar chart of hand-written against PyTorch accuracy, with the report's test
accuracy beside ours). Retrains nothing.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from nnlab import plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets import mnist
from nnlab.io import StageOutputs
from nnlab.metrics import confusion_records
from nnlab.models import linear
from nnlab.report import load_references, report_figure
from nnlab.results import write_evaluation

INPUT = "data/mnist/normalized.npz"
MODELS = {"mnist_linear": ("hand-written (numpy)", linear.load_numpy_model),
          "mnist_torch": ("PyTorch", linear.load_torch_model)}


def main(argv=None) -> None:
    stage_parser(__doc__).parse_args(argv)
    data = mnist.load_normalized(INPUT)
    records, confusions, curves = {}, {}, {}
    for name, (label, load) in MODELS.items():
        model, spec = load(f"models/{name}")
        records[name] = linear.model_record(model, spec, data)
        diverged = records[name]["diverged"]
        confusions[name] = confusion_records(
            data.labels_test, None if diverged else model.scores(data.X_test).argmax(axis=1), linear.CLASSES)
        history = pd.read_csv(f"plots/{name}/history.csv").to_dict("records")
        settings = spec["settings"]
        curves[name] = plotting.step_curves({label: {f"lr {settings['lr']:g}, batch {settings['batch_size']}": history}})
    references = load_references(Path("references.yaml"))
    # A diverged run has null accuracies: a marked gap, rather than a 0 bar.
    comparison = plotting.bar_chart(
        {MODELS[name][0]: {**{f"ours, {split}": "diverged" if record[split]["accuracy"] is None
                              else record[split]["accuracy"] for split in ("train", "test")},
                           "report 003, test": report_figure(references, [f"metrics/{name}.json", "test", "accuracy"])
                           or "not reported"}
         for name, record in records.items()},
        title=f"Linear MNIST classifier: final accuracy, ours on {records['mnist_torch']['source']} MNIST digits beside report 003's",
        ylabel="accuracy")
    with StageOutputs() as out:
        for name in MODELS:
            write_evaluation(out, name, records[name], confusions[name])
            out.figure(f"plots/{name}/curves.png", curves[name])
        out.figure("plots/mnist_torch/comparison.png", comparison)
    for name, record in records.items():
        print(f"{name}: diverged" if record["diverged"] else
              f"{name}: train {record['train']['accuracy']:.4f}, test {record['test']['accuracy']:.4f}")


if __name__ == "__main__":
    run(main)
