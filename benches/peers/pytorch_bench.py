#!/usr/bin/env python3
"""The workloads of benches/WORKLOADS.md in PyTorch, by the procedure
`wgtrain bench` uses (src/bench/mod.rs): the same shapes, steps, batch
sizes and learning rate; warm-ups, then timed repetitions; the median,
slowest and fastest rate; the timed region ending only when the device is
idle (torch.cuda.synchronize / torch.mps.synchronize). Prints one JSON line
per workload and device, as `wgtrain bench --json` does, with `peer` and
`version` added.

Usage: benches/peers/pytorch_bench.py [--quick] [--device cpu|cuda|mps|all]
[--workloads K1,T3]   (devices: the CPU, and CUDA or MPS when present)
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

FULL = dict(warmups=2, reps=10, step_scale=1.0, min_rep_seconds=0.05)
QUICK = dict(warmups=1, reps=3, step_scale=0.2, min_rep_seconds=0.01)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()
    elif dev.type == "mps":
        torch.mps.synchronize()


def rand(gen, *shape, dev):
    # Uniform in [-1, 1), as wgtrain's synthetic data.
    return (torch.rand(*shape, generator=gen) * 2 - 1).to(dev)


def matmul(m, k, n, trans_a=False, trans_b=False):
    def setup(dev, gen, budget):
        a = rand(gen, *((k, m) if trans_a else (m, k)), dev=dev)
        b = rand(gen, *((n, k) if trans_b else (k, n)), dev=dev)
        op = lambda: (a.t() if trans_a else a) @ (b.t() if trans_b else b)
        # Calibrated on a second product, rounded up, as wgtrain does.
        op()
        sync(dev)
        t = time.perf_counter()
        op()
        sync(dev)
        iters = max(1, min(1000, math.ceil(budget["min_rep_seconds"] / (time.perf_counter() - t))))

        def rep():
            for _ in range(iters):
                op()
            return 2.0 * m * k * n * iters

        return rep

    return setup


def conv(ci, co, hw):
    def setup(dev, gen, budget):
        x = rand(gen, 64, ci, hw, hw, dev=dev).requires_grad_()
        w = rand(gen, co, ci, 3, 3, dev=dev).requires_grad_()
        b = rand(gen, co, dev=dev).requires_grad_()
        dy = rand(gen, 64, co, hw, hw, dev=dev)

        def rep():
            # Forward, then the input, weight and bias gradients.
            y = F.conv2d(x, w, b, padding=1)
            torch.autograd.grad(y, (x, w, b), dy)
            return 64.0

        return rep

    return setup


def elementwise(dev, gen, budget):
    x = rand(gen, 128, 4096, dev=dev)
    dy = rand(gen, 128, 4096, dev=dev)
    plane = 128 * 4096 * 4

    def rep():
        y = torch.tanh(x)
        _ = dy * (1 - y * y)
        x.sum(dim=1)
        torch.softmax(x, dim=1)
        return plane * 8.0

    return rep


def train(kind):
    """Forward, loss, backward and an SGD step (lr 0.01) per minibatch of a
    shuffled synthetic set; the loss read back every 50 steps."""

    def setup(dev, gen, budget):
        if kind in ("T1", "T2"):
            n, batch, steps = 65536, 1024, 64
            x = rand(gen, n, 64, dev=dev)
            if kind == "T1":
                y = rand(gen, n, 1, dev=dev)
                loss_fn = F.mse_loss
            else:
                y = (torch.arange(n) % 2).float().reshape(n, 1).to(dev)
                loss_fn = F.binary_cross_entropy_with_logits
            model = torch.nn.Linear(64, 1)
            inputs = lambda idx: x[idx]
        elif kind == "T3":
            n, batch, steps = 60000, 128, 469
            x = torch.randint(0, 256, (n, 784), generator=gen, dtype=torch.uint8).to(dev)
            y = (torch.arange(n) % 10).to(dev)
            model = torch.nn.Sequential(
                torch.nn.Linear(784, 256), torch.nn.Tanh(),
                torch.nn.Linear(256, 128), torch.nn.Tanh(), torch.nn.Linear(128, 10))
            loss_fn = F.cross_entropy
            # Bytes normalised while gathering, as wgtrain does.
            inputs = lambda idx: (x[idx].float() - 127.5) / 73.7
        elif kind == "T4":
            n, batch, steps = 6400, 64, 100
            x = torch.randint(0, 256, (n, 1, 28, 28), generator=gen, dtype=torch.uint8).to(dev)
            y = (torch.arange(n) % 10).to(dev)
            model = torch.nn.Sequential(
                torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.Tanh(), torch.nn.MaxPool2d(2),
                torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.Tanh(), torch.nn.MaxPool2d(2),
                torch.nn.Flatten(), torch.nn.Linear(784, 10))
            loss_fn = F.cross_entropy
            inputs = lambda idx: (x[idx].float() - 127.5) / 73.7
        else:  # T5
            n, batch, steps, seq, vocab = 3200, 64, 50, 32, 64
            x = torch.randint(0, vocab, (n, seq), generator=gen).to(dev)
            y = torch.randint(0, vocab, (n, seq), generator=gen).to(dev)

            class Rnn(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.rnn = torch.nn.RNN(vocab, 128)
                    self.out = torch.nn.Linear(128, vocab)

                def forward(self, ids):
                    # Time-major one-hot steps, every state to the output layer.
                    h, _ = self.rnn(F.one_hot(ids.t(), vocab).float())
                    return self.out(h).reshape(-1, vocab)

            model = Rnn()
            loss_fn = lambda z, t: F.cross_entropy(z, t.t().reshape(-1))
            inputs = lambda idx: x[idx]
        model = model.to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        steps = max(2, min(n // batch, int(steps * budget["step_scale"] + 0.999)))
        order = torch.randperm(n, generator=gen).to(dev)

        def rep():
            for step in range(steps):
                idx = order[step * batch:(step + 1) * batch]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(inputs(idx)), y[idx])
                loss.backward()
                opt.step()
                if (step + 1) % 50 == 0 or step + 1 == steps:
                    loss.item()
            return float(steps * batch)

        return rep

    return setup


# Run only when named, as in wgtrain: the real-GPU size.
ON_REQUEST = {"K1-4096"}

WORKLOADS = [
    ("K1-256", "GFLOP/s", matmul(256, 256, 256)),
    ("K1-512", "GFLOP/s", matmul(512, 512, 512)),
    ("K1-1024", "GFLOP/s", matmul(1024, 1024, 1024)),
    ("K1-4096", "GFLOP/s", matmul(4096, 4096, 4096)),
    ("K1-784", "GFLOP/s", matmul(128, 784, 256)),
    ("K2-TN", "GFLOP/s", matmul(784, 128, 256, trans_a=True)),
    ("K2-NT", "GFLOP/s", matmul(128, 256, 784, trans_b=True)),
    ("K3-1x8", "images/s", conv(1, 8, 28)),
    ("K3-8x16", "images/s", conv(8, 16, 14)),
    ("K4", "GB/s", elementwise),
    ("T1", "samples/s", train("T1")),
    ("T2", "samples/s", train("T2")),
    ("T3", "samples/s", train("T3")),
    ("T4", "samples/s", train("T4")),
    ("T5", "samples/s", train("T5")),
]


def measure(setup, unit, dev, budget):
    gen = torch.Generator().manual_seed(7)
    rep = setup(dev, gen, budget)

    def timed():
        t = time.perf_counter()
        work = rep()
        sync(dev)
        return work / (time.perf_counter() - t)

    for _ in range(budget["warmups"]):
        timed()
    rates = sorted(timed() for _ in range(max(1, budget["reps"])))
    scale = 1e-9 if unit in ("GFLOP/s", "GB/s") else 1.0
    return {
        # wgtrain takes the upper median of an even count: the same here.
        "median": rates[len(rates) // 2] * scale,
        "min": rates[0] * scale,
        "max": rates[-1] * scale,
        "reps": len(rates),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer, shorter repetitions")
    ap.add_argument("--device", default="all", choices=["all", "cpu", "gpu", "cuda", "mps"],
                    help="gpu: CUDA or MPS, whichever this PyTorch has")
    ap.add_argument("--workloads", help="comma-separated ids or groups (K1, T3, ...)")
    args = ap.parse_args()
    budget = QUICK if args.quick else FULL
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        devices.append(torch.device("mps"))
    if args.device == "gpu":
        devices = [d for d in devices if d.type != "cpu"]
    elif args.device != "all":
        devices = [d for d in devices if d.type == args.device]
    if not devices:
        # Nothing to measure is not an error: the comparison goes on without.
        print(f"note: no {args.device} device in this PyTorch", file=sys.stderr)
    wanted = args.workloads.split(",") if args.workloads else None
    for dev in devices:
        adapter = None
        if dev.type == "cuda":
            adapter = torch.cuda.get_device_name(dev)
        elif dev.type == "mps":
            adapter = "Apple MPS"
        for wid, unit, setup in WORKLOADS:
            if wanted and not any(wid == w or wid.startswith(w + "-") for w in wanted):
                continue
            if wid in ON_REQUEST and not (wanted and wid in wanted):
                continue
            m = measure(setup, unit, dev, budget)
            print(json.dumps({
                "id": wid,
                "device": "cpu" if dev.type == "cpu" else "gpu",
                "adapter": adapter,
                "unit": unit,
                **m,
                "peer": "pytorch",
                "version": torch.__version__,
                "threads": torch.get_num_threads(),
            }), flush=True)


if __name__ == "__main__":
    main()
