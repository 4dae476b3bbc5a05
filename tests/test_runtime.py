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


@pytest.mark.skips_in_ci
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_is_one_clear_line(name):
    with pytest.raises(ParamError, match=f"train.device = '{name}': torch sees no CUDA device"):
        torch_device(name)


@pytest.mark.skips_in_ci
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_index_is_kept_and_checked():
    assert torch_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ParamError, match="numbered from 0"):
        torch_device(f"cuda:{torch.cuda.device_count()}")
