"""Apply the workspace's trained models to new input: ``python -m nnlab.predict <dataset> INPUT...``.

    python -m nnlab.predict imdb "What a waste of two hours." "Loved every minute"
    python -m nnlab.predict imdb --model imdb_tuned "Loved every minute"
    python -m nnlab.predict mri path/to/slice.jpg ...          [--model mri_simple_nn2]
    python -m nnlab.predict mnist digit.png ...                [--model mnist_linear]

``--model`` names a model folder under ``models/``, as dvc.yaml's stages write it
(imdb: imdb_train, imdb_tuned, imdb_logreg; mri: mri_simple_nn1, mri_simple_nn2,
mri_cnn1, mri_cnn_improved; mnist: mnist_torch, mnist_linear). It reads ``models/``
as the workspace has it, so it uses whatever ``dvc repro``, ``dvc exp apply`` or
``dvc pull`` put there, and preprocesses each input exactly as the pipeline did
its test split (the fitted TF-IDF of ``models/imdb_tfidf``, the pixel scaler of
``models/mri_scaler``, the MNIST scaling).

One line per input: the label, the class probabilities (the MNIST linear
classifiers give scores: they are fitted by squared error to one-hot targets, so
their outputs are not probabilities), the input, and the model with the data it
was trained on; a model trained on synthetic stand-in data says so on every line.
With ``--json``, one JSON object per line with the same facts. A model that
diverged in training, a missing model and bad input are one line on stderr and
exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from nnlab import artifacts
from nnlab.errors import DataError, NnlabError

Prediction = dict   # {"input", "label", "probabilities" or "scores": {class: value}, "model", "trained_on", "synthetic"}

#: Each dataset's default model, and what its inputs are. For IMDB the logistic regression: on the
#: 4,000 embedded reviews the report's SGD net (imdb_train) stays at chance (docs/studies/000.md).
DEFAULTS = {"imdb": "imdb_logreg", "mri": "mri_cnn_improved", "mnist": "mnist_torch"}
NOUNS = {"imdb": "IMDB reviews", "mri": "MRI slices", "mnist": "MNIST digits"}
SYNTHETIC = "synthetic"
#: What trains the MRI models on the Kaggle slices (docs/real-data.md).
MRI_REAL_DATA = "dvc exp run -S data.mri.source=folder -S 'data.mri.folder.path=/path/to/Alzheimer_s Dataset'"


def kinds(dataset: str) -> dict[str, Callable]:
    """``{model kind: loader(directory, stage) -> (model, spec)}`` of the models that predict ``dataset``."""
    if dataset == "imdb":
        from nnlab.models import sentiment, sentiment_linear

        return {sentiment.KIND: lambda directory, stage: sentiment.load_model(directory),
                sentiment_linear.KIND: sentiment_linear.load_model}
    if dataset == "mri":
        from nnlab.models import mri_nets

        return {mri_nets.KIND: mri_nets.load_model}
    from nnlab.models import linear

    return {linear.KINDS["numpy"]: linear.load_numpy_model, linear.KINDS["torch"]: linear.load_torch_model}


def stage_of(name: str) -> str:
    """The dvc.yaml stage that trains ``models/<name>``."""
    return f"mri_model@{name.removeprefix('mri_')}" if name.startswith("mri_") else name


def models_present(models: Path, dataset: str) -> list[str]:
    """The folders under ``models`` that hold a model for ``dataset``."""
    wanted = tuple(kinds(dataset))
    present = []
    for folder in sorted(spec_path.parent for spec_path in models.glob(f"*/{artifacts.SPEC}")):
        try:
            artifacts.read_spec(folder, wanted, stage_of(folder.name))
        except DataError:   # unreadable, or a model of another dataset
            continue
        present.append(folder.name)
    return present


def load(dataset: str, models: Path, name: str | None):
    """``(model, spec, name)`` of the chosen model; a missing, foreign or diverged one is a DataError that
    says what to run, and which models the workspace holds for ``dataset``."""
    name = name or DEFAULTS[dataset]
    loaders = kinds(dataset)
    try:
        if not name.startswith(f"{dataset}_"):
            raise DataError(f"--model {name}: models are named as their folders under {models}/ ({dataset}_<name>)")
        spec = artifacts.read_spec(models / name, tuple(loaders), stage_of(name))
    except DataError as exc:
        present = models_present(models, dataset)
        raise DataError(f"{exc}; the {dataset} models in {models}/: "
                        f"{', '.join(present) if present else 'none (run `dvc repro` to train them)'}") from None
    run = spec.get("run") or {}
    if run.get("diverged"):
        raise DataError(f"{models / name}: this model diverged in training ({run['unit']} {run['diverged_at']}), so "
                        f"it predicts nothing; stage {stage_of(name)} retrains it (lower its learning rate in "
                        f"params.yaml, then `dvc repro {stage_of(name)}`)")
    model, spec = loaders[spec["kind"]](models / name, stage_of(name))
    return model, spec, name


def provenance(name: str, spec: dict) -> dict:
    """What every answer carries: the model and the data it was trained on."""
    return {"model": name, "trained_on": spec["source"], "synthetic": spec["source"] == SYNTHETIC}


def answers(inputs: Sequence[str], values: np.ndarray, classes: Sequence[str], key: str,
            about: dict) -> list[Prediction]:
    return [{"input": text, "label": classes[int(row.argmax())], key: dict(zip(classes, map(float, row))), **about}
            for text, row in zip(inputs, values)]


# pragma: no mutate start (these read trained models: only tests/test_predict.py's subprocesses run them)
def predict_imdb(texts: Sequence[str], models: Path, model: str | None) -> list[Prediction]:
    import torch

    from nnlab.models import sentiment
    from nnlab.text import TextFeatures

    for number, text in enumerate(texts, start=1):
        if not text.strip():
            raise DataError(f"review {number}: empty text")
    features = TextFeatures.load(models / "imdb_tfidf")
    classifier, spec, name = load("imdb", models, model)
    X = features(texts)
    if spec["kind"] == sentiment.KIND:
        positive = sentiment.predict_proba(classifier, X, torch.device("cpu")).astype(np.float64)
        probabilities = np.column_stack([1 - positive, positive])
    else:
        probabilities = classifier.predict_proba(X)
    return answers(texts, probabilities, spec["classes"], "probabilities", provenance(name, spec))


def softmax_rows(logits) -> np.ndarray:
    import torch

    return torch.softmax(logits, dim=1).numpy().astype(np.float64)


def predict_mri(paths: Sequence[str], models: Path, model: str | None) -> list[Prediction]:
    """Each slice checked as the MRI folder loader checks the Kaggle images, standardised with the
    training split's pixel scaler, stacked to the model's channels, then classified."""
    import torch

    from nnlab import images
    from nnlab.datasets import mri

    scaler, scaling = images.load_pixel_scaler(models / "mri_scaler")
    net, spec, name = load("mri", models, model)
    slices = []
    for path in paths:
        try:
            slices.append(mri.decode_slice(Path(path), scaling["height"], scaling["width"]))
        except mri.SliceSizeError as exc:
            data = f"{scaling['source']} {scaling['width']}x{scaling['height']} slices"
            raise DataError(f"{path}: {exc}: {models / name} was trained on {data}; "
                            f"to classify Kaggle slices, train on the Kaggle folder first: {MRI_REAL_DATA}") from None
        except ValueError as exc:
            raise DataError(f"{path}: {exc}") from None
    batch = images.standardize_chunk(np.stack(slices), scaler, scaling["channels"])
    with torch.no_grad():
        probabilities = softmax_rows(net(torch.from_numpy(batch)))
    return answers(paths, probabilities, spec["class_names"], "probabilities", provenance(name, spec))


# pragma: no mutate end
def read_digit(path: Path, side: int) -> np.ndarray:
    """A ``side`` x ``side`` greyscale image as uint8; other sizes and colour images are refused."""
    from nnlab.datasets.mri import open_image

    try:
        with open_image(path) as image:
            image.load()
            if image.mode not in ("L", "1", "P", "LA"):
                raise DataError(f"{path}: a {image.mode} image; a digit is greyscale (mode L), white on black")
            grey = image.convert("L")
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None
    if grey.size != (side, side):
        raise DataError(f"{path}: image is {grey.size[0]}x{grey.size[1]}, expected {side}x{side}: "
                        f"the models are trained on MNIST's {side}x{side} grey digits, white on black, centred")
    return np.asarray(grey, dtype=np.uint8)


# pragma: no mutate start (as predict_imdb)
def predict_mnist(paths: Sequence[str], models: Path, model: str | None) -> list[Prediction]:
    """The linear classifiers' outputs are scores, not probabilities: they are fitted by squared
    error to one-hot targets (report 003), so they are shown as they are, ranked by size."""
    from nnlab.datasets import mnist

    scaling = artifacts.read_spec(models / "mnist_scaling", mnist.SCALING_KIND, "mnist_normalize")
    classifier, spec, name = load("mnist", models, model)
    pixels = mnist.flat_pixels(np.stack([read_digit(Path(path), scaling["side"]) for path in paths]))
    return answers(paths, classifier.scores(pixels), spec["classes"], "scores",
                   provenance(name, spec))


# pragma: no mutate end
PREDICTORS: dict[str, Callable[[Sequence[str], Path, str | None], list[Prediction]]] = {
    "imdb": predict_imdb,
    "mri": predict_mri,
    "mnist": predict_mnist,
}


def line(dataset: str, prediction: Prediction) -> str:
    """The plain output: label, values, input (a review cut at its end, a file name never cut) and
    where the model's knowledge comes from."""
    key = "probabilities" if "probabilities" in prediction else "scores"
    values = ", ".join(f"{name} {value:.4f}" for name, value in prediction[key].items())
    shown = prediction["input"]
    if dataset == "imdb" and len(shown) > 60:
        shown = shown[:57] + "..."
    noun = NOUNS[dataset]
    data = (f"SYNTHETIC {noun}, not a real-data answer" if prediction["synthetic"] else
            f"real {noun} ({prediction['trained_on']})")
    return f"{prediction['label']}\t{key}: {values}\t{shown}\t[{prediction['model']}, trained on {data}]"


# pragma: no mutate start (the command line, run by tests/test_predict.py in subprocesses)
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nnlab.predict", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(PREDICTORS))
    parser.add_argument("inputs", nargs="+", help="reviews (imdb) or image files (mri, mnist)")
    parser.add_argument("--model", help="a model folder under --models, e.g. mri_simple_nn2 (default: "
                        + ", ".join(f"{name} for {dataset}" for dataset, name in DEFAULTS.items()) + ")")
    parser.add_argument("--models", type=Path, default=Path("models"), help="where the models are (default: models)")
    parser.add_argument("--json", action="store_true", help="one JSON object per input")
    args = parser.parse_args(argv)
    try:
        predictions = PREDICTORS[args.dataset](args.inputs, args.models, args.model)
    except NnlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    for prediction in predictions:
        print(json.dumps(prediction) if args.json else line(args.dataset, prediction))
# pragma: no mutate end


if __name__ == "__main__":
    main()
