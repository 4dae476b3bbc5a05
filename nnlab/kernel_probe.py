"""Hashes of every float operation the torch stages compute, for comparing CPUs.

Each probe runs one operation of the torch stages (the matrix products of their layers' shapes,
convolution and its two gradients, pooling, batch norm, the activations, softmax and
log-softmax, the losses' reductions, the sparse first layer of the IMDB nets, the random draws,
and an SGD and an AdamW step) on seeded inputs, in the process's own kernel settings, and hashes
the bytes of what it returns. ``tests/kernel_hashes.json`` holds the hashes this project's
committed outputs were made with; ``tests/test_kernel_probe.py`` compares them on whatever CPU
the suite runs on and names the operation and the CPU that differ. Where every probe agrees,
the default pipeline's torch stages write the committed bytes on that CPU as well.

    python -m nnlab.kernel_probe            # print each probe's hash
    python -m nnlab.kernel_probe --write F  # write them to F as JSON (regenerate the committed file)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Callable

import nnlab  # noqa: F401  (pins the kernels before torch loads)


def _probes() -> dict[str, Callable[[], list]]:
    import torch
    import torch.nn.functional as F

    def draw(*shape: int, seed: int = 0) -> torch.Tensor:
        return torch.randn(shape, generator=torch.Generator().manual_seed(seed))

    def with_grads(function: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> list:
        leaves = [x.clone().requires_grad_(True) for x in inputs]
        out = function(*leaves)
        out.backward(draw(*out.shape, seed=99))
        return [out.detach(), *(leaf.grad for leaf in leaves)]

    def linear(batch: int, fan_in: int, fan_out: int) -> Callable[[], list]:
        return lambda: with_grads(F.linear, draw(batch, fan_in), draw(fan_out, fan_in, seed=1) * 0.05,
                                  draw(fan_out, seed=2))

    def conv(batch: int, channels: int, out: int, size: tuple[int, int], kernel: int, padding: int,
             bias: bool) -> Callable[[], list]:
        weight = draw(out, channels, kernel, kernel, seed=1) * 0.1
        inputs = (draw(batch, channels, *size), weight) + ((draw(out, seed=2),) if bias else ())
        return lambda: with_grads(lambda x, w, *b: F.conv2d(x, w, *b, padding=padding), *inputs)

    def evaluated_conv() -> list:
        with torch.no_grad():   # scoring takes other kernels than training (no gradient needed)
            return [F.conv2d(draw(64, 16, 24, 20), draw(32, 16, 3, 3, seed=1) * 0.1, padding=1)]

    def batch_norm() -> list:
        running = [torch.zeros(16), torch.ones(16)]
        out = with_grads(lambda x, w, b: F.batch_norm(x, *running, w, b, training=True),
                         draw(32, 16, 24, 20), draw(16, seed=1), draw(16, seed=2))
        return [*out, *running]

    def sparse_first_layer() -> list:
        generator = torch.Generator().manual_seed(3)
        columns = torch.randint(0, 5000, (16 * 120,), generator=generator)
        offsets = torch.arange(0, 16 * 120, 120)
        values = torch.rand(16 * 120, generator=generator)
        return with_grads(lambda w: F.embedding_bag(columns, w, offsets, mode="sum", per_sample_weights=values),
                          draw(5000, 64) * 0.02)

    def optimizer_steps(optimizer: Callable) -> list:
        parameter = torch.nn.Parameter(draw(64, 1920))
        step = optimizer([parameter])
        for seed in range(3):
            parameter.grad = draw(64, 1920, seed=seed + 10)
            step.step()
        return [parameter.detach(), *(value for state in step.state.values() for value in state.values()
                                      if isinstance(value, torch.Tensor))]

    def draws() -> list:
        generator = torch.Generator().manual_seed(42)
        return [torch.randn(1000, generator=generator), torch.rand(1000, generator=generator),
                torch.randperm(800, generator=generator), torch.randint(-3, 4, (64, 2), generator=generator),
                torch.nn.init.kaiming_uniform_(torch.empty(32, 1920), generator=generator),
                torch.empty(5000).bernoulli_(0.5, generator=generator)]

    logits = draw(200, 4)
    targets = torch.randint(0, 4, (200,), generator=torch.Generator().manual_seed(4))
    return {
        "linear mnist batch (100x784 -> 10)": linear(100, 784, 10),
        "linear mnist scoring (4000x784 -> 10)": linear(4000, 784, 10),
        "linear imdb hidden (16x64 -> 32)": linear(16, 64, 32),
        "linear mri mlp (32x1920 -> 256)": linear(32, 1920, 256),
        "linear mri head (32x2560 -> 4)": linear(32, 2560, 4),
        "conv2d 5x5 (cnn1, first layer)": conv(32, 1, 16, (48, 40), 5, 0, True),
        "conv2d 5x5 (cnn1, second layer)": conv(32, 16, 32, (22, 18), 5, 0, True),
        "conv2d 3x3 padded (cnn_improved)": conv(32, 16, 32, (24, 20), 3, 1, False),
        "conv2d 3x3 without gradient (scoring)": evaluated_conv,
        "max_pool2d": lambda: with_grads(lambda x: F.max_pool2d(x, 2), draw(32, 16, 44, 36)),
        "avg_pool2d": lambda: with_grads(lambda x: F.avg_pool2d(x, 4), draw(32, 1, 208, 176)),
        "batch_norm (training)": batch_norm,
        "relu, sigmoid, tanh": lambda: [F.relu(draw(4096)), torch.sigmoid(draw(4096)), torch.tanh(draw(4096))],
        "softmax": lambda: with_grads(lambda x: torch.softmax(x, dim=1), logits),
        "log_softmax": lambda: with_grads(lambda x: torch.log_softmax(x, dim=1), logits),
        "cross_entropy (mean, and class weights)": lambda: [
            *with_grads(lambda x: F.cross_entropy(x, targets), logits),
            *with_grads(lambda x: F.cross_entropy(x, targets, weight=torch.tensor([2.0, 1.0, 0.5, 4.0])), logits)],
        "mse (sum)": lambda: with_grads(lambda x: F.mse_loss(x, draw(100, 10, seed=5), reduction="sum"),
                                        draw(100, 10)),
        "binary cross-entropy (on a sigmoid, and with logits)": lambda: [
            *with_grads(lambda x: F.binary_cross_entropy(torch.sigmoid(x), (draw(16, 1, seed=6) > 0).float()),
                        draw(16, 1)),
            *with_grads(lambda x: F.binary_cross_entropy_with_logits(x, (draw(16, 1, seed=6) > 0).float()),
                        draw(16, 1))],
        "sum and mean reductions": lambda: [draw(100_000).sum(), draw(100_000).mean(), draw(512, 300).sum(dim=0)],
        "embedding_bag (sparse first layer)": sparse_first_layer,
        "sgd step (momentum 0.9, weight decay)": lambda: optimizer_steps(
            lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, weight_decay=1e-4)),
        "adam step": lambda: optimizer_steps(lambda p: torch.optim.Adam(p, lr=1e-3)),
        "adamw step": lambda: optimizer_steps(lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=1e-2)),
        "random draws (randn, rand, randperm, randint, kaiming_uniform_, bernoulli_)": draws,
    }


def digest(tensors: list) -> str:
    hasher = hashlib.sha256()
    for tensor in tensors:
        hasher.update(tensor.detach().contiguous().numpy().tobytes())
    return hasher.hexdigest()[:16]


def run() -> dict[str, str]:
    """Each probe's hash, computed on one thread as the stages train."""
    import torch

    torch.set_num_threads(1)
    return {name: digest(probe()) for name, probe in _probes().items()}


def cpu_model() -> str:
    """``/proc/cpuinfo``'s model name and its SIMD flags: what names the CPU in a failure."""
    from nnlab.kernels import cpu_flags

    name = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            name = next((line.partition(":")[2].strip() for line in cpuinfo if line.startswith("model name")), name)
    except OSError:
        pass
    simd = sorted(flag for flag in cpu_flags() if flag.startswith(("avx", "fma", "sse")))
    return f"{name} ({' '.join(simd) or 'no SIMD flags read'})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="FILE", help="write the hashes to FILE as JSON")
    args = parser.parse_args(argv)
    hashes = run()
    if args.write:
        with open(args.write, "w") as out:
            json.dump(hashes, out, indent=2)
            out.write("\n")
    else:
        json.dump(hashes, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
