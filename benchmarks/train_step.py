"""Time of one SimCLR training step (default batch 256 images = 512 views) on this CPU.

Two parts, each measured before and after the speed-ups, in one run:

1. The network alone (forward + backward + Adam step on fixed views): eager NCHW PyTorch
   (before); eager channels_last; channels_last with small-map convolutions dense
   (chipbench.dense_conv, the trainer's default); the same through torch.compile
   (train.simclr.compile true). Median of --steps steps after one warm-up step (the compiled
   one's warm-up compiles).
2. Whole steps, views included: before = views made one image at a time, then the eager
   NCHW step; now = views made in chunks (chipbench.augment.CHUNK images at once), then the
   trainer's channels_last dense step. Median of --steps steps after one warm-up step.

Prints the CPU model and flags beside the figures, and the whole step's speed-up.

    .venv/bin/python benchmarks/train_step.py [--batch 256] [--steps 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chipbench import augment, host, models, train, training_loop  # noqa: E402


def network(layout: str, compiled: bool = False) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(model, module to call) in ``layout``: "nchw", "channels_last" or "trainer" (the
    trainer's preparation: channels_last and dense small-map convolutions)."""
    torch.manual_seed(0)
    model = models.ResNetSimCLR()
    if layout == "trainer":
        return model, training_loop.prepare_model(model, torch.device("cpu"), compiled)
    if layout == "channels_last":
        model.to(memory_format=torch.channels_last)
    return model, model


def train_step(forward, optimizer, x: torch.Tensor) -> float:
    loss = train.nt_xent_loss(forward(x), 0.07)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def time_network(layout: str, compiled: bool, x: torch.Tensor, steps: int) -> tuple[float, float]:
    """(first step's seconds, median of the next ``steps`` steps' seconds) on fixed views."""
    model, forward = network(layout, compiled)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4, weight_decay=1e-4)
    if layout != "nchw":
        x = training_loop.as_channels_last(x)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        train_step(forward, optimizer, x)
        times.append(time.perf_counter() - start)
    return times[0], statistics.median(times[1:])


def first_then_second_views(images: np.ndarray, start_index: int) -> torch.Tensor:
    pairs = augment.simclr_views(images, 0, start_index=start_index)
    return torch.from_numpy(np.concatenate([pairs[0::2], pairs[1::2]]))


def time_whole_steps(before: bool, images: np.ndarray, batch: int, steps: int) -> float:
    """Median seconds of a whole step (views, then network), after one warm-up step."""
    model, forward = network("nchw" if before else "trainer")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4, weight_decay=1e-4)
    saved, augment.CHUNK = augment.CHUNK, 1 if before else augment.CHUNK
    times = []
    try:
        for index in range(steps + 1):
            start = time.perf_counter()
            x = first_then_second_views(images[index * batch:(index + 1) * batch], index * batch)
            train_step(forward, optimizer, x if before else training_loop.as_channels_last(x))
            times.append(time.perf_counter() - start)
    finally:
        augment.CHUNK = saved
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256, help="images per step (2 views each)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    training_loop.setup_threads(args.threads)
    print(f"CPU: {host.cpu_model()}; flags: {' '.join(host.cpu_flags()) or 'none of interest'}; "
          f"torch {torch.__version__}, {args.threads} threads; batch {args.batch} images "
          f"({2 * args.batch} views)")
    images = np.random.default_rng(0).integers(
        0, 256, ((args.steps + 1) * args.batch, 3, 32, 32), dtype=np.uint8)
    x = first_then_second_views(images[:args.batch], 0)
    print("network alone (forward + backward + Adam step):")
    for name, layout, compiled in [
        ("eager NCHW (before)", "nchw", False),
        ("eager channels_last", "channels_last", False),
        ("channels_last + dense small maps (now)", "trainer", False),
        ("the same + torch.compile", "trainer", True),
    ]:
        first, median = time_network(layout, compiled, x, args.steps)
        print(f"  {name:40s} {median:.3f} s (median of {args.steps}; first step {first:.1f} s)",
              flush=True)
    before = time_whole_steps(True, images, args.batch, args.steps)
    print(f"whole step, views one image at a time, then the NCHW step (before): {before:.3f} s",
          flush=True)
    now = time_whole_steps(False, images, args.batch, args.steps)
    print(f"whole step, views made in chunks, then the dense channels_last step (now): {now:.3f} s")
    print(f"whole step: {before / now:.2f}x faster")


if __name__ == "__main__":
    main()
