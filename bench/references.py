"""Plain reference versions of the project's hot loops, written the way the source reports wrote them.

Each function computes what its counterpart in :mod:`nnlab` computes (the
tests in ``tests/test_bench_references.py`` check that on tiny data), but in
the straightforward style of the reports: float64, everything recomputed,
a fresh array per operation, Python loops where the report had them, torch
on its default thread count. Where the report's code differed in *what* it
computes (e.g. it dropped the last partial batch), the reference follows
ours, so that a speed ratio compares the same work.
"""
from __future__ import annotations

import re

import numpy as np
import torch


# --- numpy MLP (reports 000 §1 and 002 §3): layers as plain classes, full-batch GD -----------------

def mlp_reference(X, y, X_test, y_test, weights: list[tuple[np.ndarray, np.ndarray]], *, lr: float,
                  steps: int, eval_every: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[dict]]:
    """Full-batch gradient descent on ReLU layers with softmax cross-entropy, scored every ``eval_every``.

    ``weights`` are the initial ``(W, b)`` of each Linear layer (``W`` of shape ``(in, out)``).
    Returns the final weights and the history rows ``(step, train_loss, train_accuracy, test_loss, test_accuracy)``.
    """
    params = [(W.copy(), b.copy()) for W, b in weights]

    def forward(X):
        activations = [X]
        for k, (W, b) in enumerate(params):
            z = np.dot(activations[-1], W) + b
            activations.append(z if k == len(params) - 1 else np.maximum(z, 0))
        return activations

    def softmax(z):
        e = np.exp(z - np.max(z, axis=1, keepdims=True))
        return e / np.sum(e, axis=1, keepdims=True)

    def loss_accuracy(X, y):
        probs = softmax(forward(X)[-1])
        loss = -np.mean(np.log(probs[np.arange(len(y)), y]))
        return loss, np.mean(np.argmax(probs, axis=1) == y)

    def record(step):
        train_loss, train_accuracy = loss_accuracy(X, y)
        test_loss, test_accuracy = loss_accuracy(X_test, y_test)
        history.append({"step": step, "train_loss": train_loss, "train_accuracy": train_accuracy,
                        "test_loss": test_loss, "test_accuracy": test_accuracy})

    one_hot = np.eye(int(y.max()) + 1)[y]
    history: list[dict] = []
    record(0)
    for step in range(1, steps + 1):
        activations = forward(X)
        grad = (softmax(activations[-1]) - one_hot) / len(X)
        grads = []
        for k in reversed(range(len(params))):
            W, b = params[k]
            grads.append((np.dot(activations[k].T, grad), np.sum(grad, axis=0)))
            if k:
                grad = np.dot(grad, W.T) * (activations[k] > 0)
        for (W, b), (dW, db) in zip(params, reversed(grads)):
            W -= lr * dW
            b -= lr * db
        if step % eval_every == 0 or step == steps:
            record(step)
    return params, history


# --- perceptron (report 002 §1, Algorithm 1): predictions and gradient sample by sample -------------

def perceptron_reference(X, y, X_test, y_test, *, lr: float, max_epochs: int) -> tuple[np.ndarray, list[dict]]:
    """The batch perceptron from w = 0 with a Python loop over the samples, as Algorithm 1 reads."""
    def with_one(x):
        return list(x) + [1.0]

    def scores(w, X, y):
        errors, loss, correct = 0, 0.0, 0
        for x, target in zip(X, y):
            activation = sum(wi * xi for wi, xi in zip(w, with_one(x)))
            loss += max(0.0, -target * activation)
            correct += (1 if activation >= 0 else -1) == target
            errors += target * activation <= 0
        return loss / len(y), correct / len(y), errors

    w = [0.0] * (X.shape[1] + 1)
    history = []
    for epoch in range(1, max_epochs + 1):
        gradient = [0.0] * len(w)
        for x, target in zip(X, y):
            xb = with_one(x)
            if target * sum(wi * xi for wi, xi in zip(w, xb)) <= 0:
                gradient = [g - target * xi / len(y) for g, xi in zip(gradient, xb)]
        w = [wi - lr * g for wi, g in zip(w, gradient)]
        train_loss, train_accuracy, errors = scores(w, X, y)
        test_loss, test_accuracy, _ = scores(w, X_test, y_test)
        history.append({"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy,
                        "test_loss": test_loss, "test_accuracy": test_accuracy})
        if errors == 0:
            break
    return np.array(w), history


# --- MNIST linear classifier (report 003, verbatim apart from the batch source) ---------------------

def mnist_reference(X_train, Y_train, X_test, Y_test, batches, *, lr: float):
    """Report 003's ``train_model``: X as (784, N) float64, train loss, train and test accuracy every step.

    ``batches`` yields the index array of each step (the report called
    ``np.random.choice``; here both sides draw from the same generator).
    Returns ``(W trajectory (steps, 10, 784), train_losses, train_accs, test_accs)``.
    """
    X_train, Y_train = np.asarray(X_train, dtype=np.float64).T, np.asarray(Y_train, dtype=np.float64).T
    X_test, Y_test = np.asarray(X_test, dtype=np.float64).T, np.asarray(Y_test, dtype=np.float64).T

    def calculate_loss(W, X, Y):
        y_pred = W @ X
        return np.mean(np.sum((y_pred - Y) ** 2, axis=0) / 2)

    def calculate_accuracy(W, X, Y):
        y_pred = np.argmax(W @ X, axis=0)
        y_true = np.argmax(Y, axis=0)
        return np.mean(y_pred == y_true)

    def update_weights(W, X_batch, y_batch, learning_rate):
        y_pred = W @ X_batch
        gradient = (y_pred - y_batch) @ X_batch.T / X_batch.shape[1]
        return W - learning_rate * gradient

    W = np.zeros((10, 784))
    trajectory, train_losses, train_accs, test_accs = [], [], [], []
    for idx in batches:
        W = update_weights(W, X_train[:, idx], Y_train[:, idx], lr)
        trajectory.append(W)
        train_losses.append(calculate_loss(W, X_train, Y_train))
        train_accs.append(calculate_accuracy(W, X_train, Y_train))
        test_accs.append(calculate_accuracy(W, X_test, Y_test))
    return np.array(trajectory), train_losses, train_accs, test_accs


# --- circles tanh MLP (report 004): one run at a time, report's functions --------------------------

def tanh_run_reference(X_train, Y_train, X_test, Y_test, init: dict, *, eta: float, batch_size: int,
                       epochs: int, generator: torch.Generator) -> tuple[dict, list[dict]]:
    """Report 004's loop for one learning rate: permute, batches, forward, backward, sgd; score per epoch.

    ``generator`` draws the permutations (the report used ``np.random.permutation``);
    the last, smaller batch of an epoch is kept, as ours does.
    """
    params = {name: value.clone() for name, value in init.items()}

    def forward(params, X):
        outputs = {"X": X}
        outputs["htilde"] = torch.mm(X, params["Wh"].t()) + params["bh"]
        outputs["h"] = torch.tanh(outputs["htilde"])
        outputs["ytilde"] = torch.mm(outputs["h"], params["Wy"].t()) + params["by"]
        outputs["yhat"] = torch.softmax(outputs["ytilde"], dim=1)
        return outputs["yhat"], outputs

    def loss_accuracy(Yhat, Y):
        L = -torch.mean(torch.sum(torch.xlogy(Y, Yhat), dim=1))
        acc = torch.mean((torch.argmax(Yhat, dim=1) == torch.argmax(Y, dim=1)).double())
        return L, acc

    def backward(params, outputs, Y):
        bsize = Y.shape[0]
        delta_y = outputs["yhat"] - Y
        delta_h = torch.mm(delta_y, params["Wy"]) * (1 - outputs["h"] ** 2)
        return {"Wy": torch.mm(delta_y.t(), outputs["h"]) / bsize, "Wh": torch.mm(delta_h.t(), outputs["X"]) / bsize,
                "by": torch.mean(delta_y, dim=0, keepdim=True), "bh": torch.mean(delta_h, dim=0, keepdim=True)}

    def sgd(params, grads, eta):
        for name in ("Wh", "Wy", "bh", "by"):
            params[name] -= eta * grads[name]
        return params

    N = X_train.shape[0]
    history = []
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(N, generator=generator)
        Xtrain, Ytrain = X_train[perm, :], Y_train[perm, :]
        for start in range(0, N, batch_size):
            X, Y = Xtrain[start:start + batch_size], Ytrain[start:start + batch_size]
            Yhat, outputs = forward(params, X)
            params = sgd(params, backward(params, outputs, Y), eta)
        params64 = {name: value.double() for name, value in params.items()}
        row = {"epoch": epoch}
        for split, X, Y in (("train", X_train, Y_train), ("test", X_test, Y_test)):
            loss, accuracy = loss_accuracy(forward(params64, X.double())[0], Y.double())
            row[f"{split}_loss"], row[f"{split}_accuracy"] = loss.item(), accuracy.item()
        history.append(row)
    return params, history


# --- IMDB cleaning (report 000 §2): one function per review, applied in one process ----------------

def clean_review_reference(text: str, stop_words: list[str], stem, number_to_words) -> str:
    """The cleaning steps in the order of :class:`nnlab.text.Cleaner`, written plainly.

    Patterns are given as strings at every call, stop words are a list, every
    token is stemmed afresh (no cache); ``number_to_words`` spells one integer.
    """
    text = re.sub(r"<[^>]*>", " ", text)
    import html
    text = html.unescape(text)
    text = text.lower()

    def spell(match):
        digits = match.group().replace(",", "")
        if len(digits) > 12:
            return " " + " ".join(number_to_words(int(d)) for d in digits) + " "
        return " " + number_to_words(int(digits)) + " "

    text = re.sub(r"\d{1,3}(?:,\d{3})+(?!\d)|\d+", spell, text)
    text = re.sub(r"\\[ntr]|[\n\t\r]", " ", text)
    text = re.sub(r"['\u2019]", "", text)
    text = re.sub(r"[^\w\s]|_", " ", text)
    words = [word for word in text.split() if word not in stop_words]
    return " ".join(stem(word) for word in words)


def tfidf_reference(train_texts, test_texts, max_features: int):
    """``TfidfVectorizer(max_features=...)`` at its default float64, dense afterwards as the report fed torch."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(max_features=max_features, lowercase=False)
    X_train = vectorizer.fit_transform(train_texts).toarray()
    X_test = vectorizer.transform(test_texts).toarray()
    return X_train, X_test, list(vectorizer.get_feature_names_out())


# --- one IMDB epoch (report 000 §3): dense tensors, TensorDataset, DataLoader(shuffle) -------------

class Net(torch.nn.Module):
    """The report's ``Net``: three fully connected layers on the dense TF-IDF rows, ReLU, sigmoid output."""

    def __init__(self, n_features: int, hidden_units: tuple[int, int]):
        super().__init__()
        self.fc1 = torch.nn.Linear(n_features, hidden_units[0])
        self.fc2 = torch.nn.Linear(hidden_units[0], hidden_units[1])
        self.fc3 = torch.nn.Linear(hidden_units[1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return torch.sigmoid(self.fc3(x)).squeeze(1)


def imdb_epoch_reference(model: torch.nn.Module, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
                         *, lr: float, batch_size: int, generator: torch.Generator) -> np.ndarray:
    """One epoch of SGD on BCE over a dense ``TensorDataset``; returns the test probabilities."""
    from torch.utils.data import DataLoader, RandomSampler, TensorDataset

    X_train_tensor = torch.from_numpy(X_train).float()
    y_train_tensor = torch.tensor(y_train, dtype=torch.float32)
    dataset = TensorDataset(X_train_tensor, y_train_tensor)
    # shuffle=True, with the generator on the sampler as ours has it (so both draw the same order)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=RandomSampler(dataset, generator=generator))
    criterion = torch.nn.BCELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    for inputs, labels in loader:
        optimizer.zero_grad()
        loss = criterion(model(inputs), labels)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(X_test).float()).numpy()


# --- MRI normalisation (report 001): StandardScaler.fit_transform on the flattened float64 stack ----

def mri_normalize_reference(train_images: np.ndarray, test_images: np.ndarray, channels: int):
    """Stack the grey slice ``channels`` times, flatten, and standardise every feature (report In [16]-[17])."""
    from sklearn.preprocessing import StandardScaler

    def stacked(images):
        return np.repeat(images[:, None].astype(np.float64), channels, axis=1).reshape(len(images), -1)

    scaler = StandardScaler()
    train = scaler.fit_transform(stacked(train_images))
    test = scaler.transform(stacked(test_images))
    shape = (channels, *train_images.shape[1:])
    return train.reshape(-1, *shape), test.reshape(-1, *shape)


# --- one CNN epoch (report 001): slices of one big tensor, no DataLoader ----------------------------

def cnn_epoch_reference(model: torch.nn.Module, x_train: torch.Tensor, y_train: torch.Tensor,
                        x_test: torch.Tensor, *, lr: float, batches) -> torch.Tensor:
    """The report's ``train`` for one epoch, then its ``test``: returns the test predictions.

    ``batches`` gives the row indices of each step (the report: consecutive slices of ``batch_number``).
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss_function = torch.nn.CrossEntropyLoss()
    model.train()
    for rows in batches:
        batch_x, batch_y = x_train[rows], y_train[rows]
        loss = loss_function(model(batch_x), batch_y)
        model.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        return torch.argmax(model(x_test), dim=1)
