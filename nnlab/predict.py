"""Apply the workspace's trained models to new input: ``python -m nnlab.predict <dataset> INPUT...``.

    python -m nnlab.predict imdb "What a waste of two hours." "Loved every minute"
    python -m nnlab.predict mri path/to/slice.jpg ...          [--model cnn_improved]
    python -m nnlab.predict mnist digit.png ...                [--model mnist_torch]

It reads ``models/`` as the workspace has it, so it uses whatever ``dvc repro``,
``dvc exp apply`` or ``dvc pull`` put there, and preprocesses each input exactly
as the pipeline did its test split (the fitted TF-IDF of ``models/imdb_tfidf``,
the pixel scaler of ``models/mri_scaler``, the MNIST scaling). One line per input
(the label, then the probabilities), or with ``--json`` one JSON object per line.
Bad input is one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from nnlab.errors import DataError, NnlabError

Prediction = dict   # {"input": .., "label": .., "probabilities": {class: p}}


def predict_imdb(texts: Sequence[str], models: Path, model: str | None) -> list[Prediction]:
    import torch

    from nnlab.models import sentiment
    from nnlab.text import TextFeatures

    for number, text in enumerate(texts, start=1):
        if not text.strip():
            raise DataError(f"review {number}: empty text")
    features = TextFeatures.load(models / "imdb_tfidf")
    net, spec = sentiment.load_model(models / (model or "imdb_train"))
    positive = sentiment.predict_proba(net, features(texts), torch.device("cpu"))
    negative_name, positive_name = spec["classes"]
    return [{"input": text, "label": positive_name if p >= 0.5 else negative_name,
             "probabilities": {negative_name: float(1 - p), positive_name: float(p)}}
            for text, p in zip(texts, positive)]


def softmax_rows(logits) -> np.ndarray:
    import torch

    return torch.softmax(logits, dim=1).numpy().astype(np.float64)


def predict_mri(paths: Sequence[str], models: Path, model: str | None) -> list[Prediction]:
    """Each slice checked as the MRI folder loader checks the Kaggle images, standardised with the
    training split's pixel scaler, stacked to the model's channels, then classified."""
    import torch

    from nnlab import images
    from nnlab.datasets import mri
    from nnlab.models import mri_nets

    scaler, scaling = images.load_pixel_scaler(models / "mri_scaler")
    name = model or "mri_cnn_improved"
    net, spec = mri_nets.load_model(models / name, f"mri_model@{name.removeprefix('mri_')}")
    slices = []
    for path in paths:
        try:
            slices.append(mri.decode_slice(Path(path), scaling["height"], scaling["width"]))
        except ValueError as exc:
            raise DataError(f"{path}: {exc}") from None
    batch = images.standardize_chunk(np.stack(slices), scaler, scaling["channels"])
    with torch.no_grad():
        probabilities = softmax_rows(net(torch.from_numpy(batch)))
    classes = spec["class_names"]
    return [{"input": path, "label": classes[int(row.argmax())],
             "probabilities": dict(zip(classes, map(float, row)))} for path, row in zip(paths, probabilities)]


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
        raise DataError(f"{path}: image is {grey.size[0]}x{grey.size[1]}, expected {side}x{side}")
    return np.asarray(grey, dtype=np.uint8)


def predict_mnist(paths: Sequence[str], models: Path, model: str | None) -> list[Prediction]:
    """The linear classifiers give scores, not probabilities (their loss is MSE to one-hot
    targets): the probabilities shown are the scores' softmax, ranked as the scores are."""
    import torch

    from nnlab import artifacts
    from nnlab.datasets import mnist
    from nnlab.models import linear

    scaling = artifacts.read_spec(models / "mnist_scaling", mnist.SCALING_KIND, "mnist_normalize")
    name = model or "mnist_torch"
    load = linear.load_numpy_model if name == "mnist_linear" else linear.load_torch_model
    classifier, spec = load(models / name, name)
    pixels = mnist.flat_pixels(np.stack([read_digit(Path(path), scaling["side"]) for path in paths]))
    probabilities = softmax_rows(torch.from_numpy(classifier.scores(pixels)))
    return [{"input": path, "label": spec["classes"][int(row.argmax())],
             "probabilities": dict(zip(spec["classes"], map(float, row)))} for path, row in zip(paths, probabilities)]


PREDICTORS: dict[str, Callable[[Sequence[str], Path, str | None], list[Prediction]]] = {
    "imdb": predict_imdb,
    "mri": predict_mri,
    "mnist": predict_mnist,
}


def line(prediction: Prediction) -> str:
    probabilities = "  ".join(f"{name} {p:.4f}" for name, p in prediction["probabilities"].items())
    shown = prediction["input"] if len(prediction["input"]) <= 60 else prediction["input"][:57] + "..."
    return f"{prediction['label']}\t{probabilities}\t{shown}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nnlab.predict", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(PREDICTORS))
    parser.add_argument("inputs", nargs="+", help="reviews (imdb) or image files (mri, mnist)")
    parser.add_argument("--model", help="the model folder under --models (default: the dataset's headline model)")
    parser.add_argument("--models", type=Path, default=Path("models"), help="where the models are (default: models)")
    parser.add_argument("--json", action="store_true", help="one JSON object per input")
    args = parser.parse_args(argv)
    try:
        predictions = PREDICTORS[args.dataset](args.inputs, args.models, args.model)
    except NnlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    for prediction in predictions:
        print(json.dumps(prediction) if args.json else line(prediction))


if __name__ == "__main__":
    main()
