"""A numpy neural-network library written from scratch (reports 000 §1 and 002 §3-4).

Layers (:mod:`.layers`), losses (:mod:`.losses`), initialisers (:mod:`.init`)
and :class:`Sequential` with plain SGD training (:mod:`.sequential`). Rows are
samples, float64 throughout, no Python loop over samples.
"""
from nnlab.nn.layers import LeakyReLU, Linear, ReLU, Sigmoid, SoftMax, Tanh
from nnlab.nn.losses import MSE, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, CrossEntropy
from nnlab.nn.sequential import HISTORY_COLUMNS, Sequential, steps_per_epoch

__all__ = [
    "Linear", "ReLU", "Sigmoid", "Tanh", "LeakyReLU", "SoftMax",
    "CrossEntropy", "BinaryCrossEntropy", "BinaryCrossEntropyWithLogits", "MSE",
    "Sequential", "HISTORY_COLUMNS", "steps_per_epoch",
]
