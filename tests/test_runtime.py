"""Seeding and device choice."""
import pytest
import torch

from nnlab.errors import ParamError
from nnlab.runtime import seed_torch, torch_device


def test_seed_torch_turns_determinism_on_and_repeats_draws():
    seed_torch(3)
    first = torch.rand(4)
    seed_torch(3)
    assert torch.equal(first, torch.rand(4))
    assert torch.are_deterministic_algorithms_enabled()


def test_device_choice():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert torch_device("auto").type == expected
    assert torch_device("cpu").type == "cpu"
    with pytest.raises(ParamError, match="train.device = 'tpu'"):
        torch_device("tpu")
