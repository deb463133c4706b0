"""Time of one SimCLR training step (default batch 256 images = 512 views) on this CPU.

Times the view making (numpy augmentation) and the forward + backward + Adam step in three
ways: eager PyTorch in the default NCHW layout (the trainer before), eager channels_last,
and channels_last through torch.compile (the trainer now, config train.compile). Each is
the median of --steps steps after one warm-up step (the compiled one's warm-up compiles).
Prints the CPU model and flags beside the figures.

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


def time_steps(forward, model, x, steps: int) -> tuple[float, float]:
    """(first step's seconds, median of the next `steps` steps' seconds)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4, weight_decay=1e-4)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss = train.nt_xent_loss(forward(x), 0.07)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times[0], statistics.median(times[1:])


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
    images = np.random.default_rng(0).integers(0, 256, (args.batch, 3, 32, 32), dtype=np.uint8)
    start = time.perf_counter()
    views = augment.simclr_views(images, seed=0)
    augment_s = time.perf_counter() - start
    print(f"views (numpy augmentation): {augment_s:.3f} s per step")
    x = torch.from_numpy(np.concatenate([views[0::2], views[1::2]]))
    variants = {
        "eager NCHW (before)": (False, False),
        "eager channels_last": (True, False),
        "channels_last + torch.compile (now)": (True, True),
    }
    results = {}
    for name, (channels_last, compiled) in variants.items():
        model = models.ResNetSimCLR()
        if channels_last:
            forward = training_loop.prepare_model(model, torch.device("cpu"), compiled)
            batch = training_loop.as_channels_last(x)
        else:
            forward, batch = model, x
        first, median = time_steps(forward, model, batch, args.steps)
        results[name] = median
        print(f"{name:38s} forward+backward+step {median:.3f} s (median of {args.steps}; "
              f"first step {first:.1f} s)", flush=True)
    before = results["eager NCHW (before)"] + augment_s
    after = results["channels_last + torch.compile (now)"] + augment_s
    print(f"step with views: before {before:.3f} s, now {after:.3f} s: {before / after:.2f}x faster")


if __name__ == "__main__":
    main()
