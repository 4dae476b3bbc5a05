"""Params sections turned into the library's config objects, where several stages read the same section.

Only stages call these (the library itself takes plain values and config
objects, never a params :class:`~nnlab.params.Section`). Each function reads
its keys through the typed getters, so a stage still ends with
``check_all_used()`` on the section.
"""
from __future__ import annotations

import sys

from nnlab import memory
from nnlab.models.sentiment import (ACTIVATIONS, INITS, OPTIMIZERS, PREDICT_BATCH_SIZE, ClassifierConfig, SentimentNet,
                                    sparse_gradient_fits)
from nnlab.params import Section, learning_rate


def classifier_config(params: Section, cfg: Section) -> ClassifierConfig:
    """The IMDB classifier of section ``cfg`` (``imdb_train`` or ``imdb_tuned``), its lr falling back to
    ``train.lr``."""
    hidden = cfg.int_list("hidden_units")
    if len(hidden) != 2:
        raise cfg.fail("hidden_units", hidden, "three FC layers take exactly two hidden sizes, e.g. \"64,32\"")
    return ClassifierConfig(
        hidden_units=tuple(hidden), activation=cfg.str("activation", choices=ACTIVATIONS),
        init=cfg.str("init", choices=INITS), lr=learning_rate(params, cfg),
        optimizer=cfg.str("optimizer", choices=OPTIMIZERS), weight_decay=cfg.float("weight_decay", min=0.0),
        # Only >= 1 here, before the data are read: the stage checks it against the training reviews.
        batch_size=cfg.batch_size("batch_size", sys.maxsize, allow_full=False), epochs=cfg.int("epochs", min=1),
        log_every=cfg.int("log_every", min=1),
    )



def classifier_memory(cfg: Section, config: ClassifierConfig, features: str, *, copies: int = 1) -> tuple:
    """What ``copies`` classifiers of ``config`` trained side by side need (:func:`nnlab.memory.torch_net`), on
    the TF-IDF matrix ``features`` (its width read from the file; 1 when it cannot be read, and reading
    the features then says why)."""
    return memory.torch_net(
        (cfg, "hidden_units"), (cfg, "batch_size"),
        lambda: SentimentNet(max(memory.sparse_columns(features), 1), config.hidden_units, config.activation,
                             config.init, sparse_gradient=sparse_gradient_fits(config)),
        batch=config.batch_size, eval_batch=PREDICT_BATCH_SIZE, optimizer_slots=2 if config.optimizer == "adam" else 0,
        layer_widths=[width for width in (*config.hidden_units, 1) for _ in "xy"], copies=copies)   # linear, activation
