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


PREDICTORS: dict[str, Callable[[Sequence[str], Path, str | None], list[Prediction]]] = {
    "imdb": predict_imdb,
    "mri": predict_mri,
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
