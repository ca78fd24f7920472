"""Benchmark: ``python -m cnnlib.bench`` (``--help`` for options).

Times cnnlib's fast path, the naive loops of :mod:`cnnlib.reference` (on a reduced batch, scaled
up linearly) and PyTorch on the CPU when it is installed, on float32 problems. The contenders
take turns in blocks of rounds, so that load from other processes on a shared machine hits them
alike, each block after a pause that lets the other library's threads settle; the medians and
their ratios are what to read. Also reports the GFLOP/s reached against a bare NumPy matmul of
the same GEMM, and trains the digits CNN in a fresh process to measure its time, accuracy and
peak memory.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from math import prod

import numpy as np

from . import functional as F
from . import reference

SHAPES = [  # (N, C_in, C_out, size, kernel, padding)
    (32, 64, 64, 32, 3, 1),
    (32, 32, 128, 16, 3, 1),
    (64, 1, 32, 28, 5, 2),
]


@dataclass
class Row:
    op: str
    shape: str
    cnnlib: float
    naive: float | None = None
    torch: float | None = None
    gflops: float | None = None
    matmul_gflops: float | None = None


# After a GEMM, OpenBLAS's worker threads spin for about 0.1 s waiting for more work, and
# PyTorch's OpenMP threads do the same; measured here, a PyTorch convolution timed right after a
# NumPy matmul took up to 4x its time. So contenders take turns in blocks of rounds, and each
# block starts after a pause that lets the other library's threads go to sleep.
SETTLE_S = 0.3
BLOCK = 3


def _median_times(contenders: dict, rounds: int) -> dict[str, float]:
    """Median seconds per contender, in alternating blocks of rounds."""
    times = {name: [] for name in contenders}
    while len(next(iter(times.values()))) < rounds:
        for name, fn in contenders.items():
            time.sleep(SETTLE_S)
            fn()  # untimed: wakes this library's threads, touches its allocations
            for _ in range(min(BLOCK, rounds - len(times[name]))):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return torch


def bench_layers(rounds: int, naive_batch: int) -> list[Row]:
    torch = _torch()
    rng = np.random.default_rng(0)
    rows = []
    for n, c_in, c_out, size, k, p in SHAPES:
        label = f"N={n} {c_in}->{c_out} {size}x{size} k{k} p{p}"
        x = rng.standard_normal((n, c_in, size, size), dtype=np.float32)
        w = rng.standard_normal((c_out, c_in, k, k), dtype=np.float32)
        b = rng.standard_normal(c_out, dtype=np.float32)
        y = F.conv2d(x, w, b, padding=p)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        # The GEMM each pass performs: (C_out x C_in k^2) @ (C_in k^2 x N H_out W_out).
        a = rng.standard_normal((c_out, c_in * k * k), dtype=np.float32)
        cols = rng.standard_normal((c_in * k * k, n * prod(y.shape[2:])), dtype=np.float32)
        flops = 2 * a.shape[0] * a.shape[1] * cols.shape[1]

        grad_cols = a @ cols
        forward = {"cnnlib": lambda: F.conv2d(x, w, b, padding=p), "matmul": lambda: a @ cols}
        # The backward does two such GEMMs: dW = dy cols^T and dcols = W^T dy.
        backward = {"cnnlib": lambda: F.conv2d_backward(dy, x, w, padding=p),
                    "matmul": lambda: (grad_cols @ cols.T, a.T @ grad_cols)}
        pooled = F.max_pool2d(y, 2)
        dpool = np.ones_like(pooled)
        pool = {"cnnlib": lambda: F.max_pool2d(y, 2)}
        # Both backward passes start from the argmax indices their training forward saved.
        indices = F.max_pool2d(y, 2, return_indices=True)[1]
        pool_back = {"cnnlib": lambda: F.max_pool2d_backward(dpool, y, 2, indices=indices)}

        def pool_step():
            _, indices = F.max_pool2d(y, 2, return_indices=True)
            return F.max_pool2d_backward(dpool, y, 2, indices=indices)

        pool_step = {"cnnlib": pool_step}
        if torch is not None:
            tx, tw, tb, ty = (torch.from_numpy(v) for v in (x, w, b, y))
            tdy, tdpool = torch.from_numpy(dy), torch.from_numpy(dpool)
            txg, twg, tbg, tyg = (t.clone().requires_grad_() for t in (tx, tw, tb, ty))

            def conv_forward():
                with torch.no_grad():
                    return torch.nn.functional.conv2d(tx, tw, tb, padding=p)

            def pool_forward():
                with torch.no_grad():
                    return torch.nn.functional.max_pool2d(ty, 2)

            forward["torch"], pool["torch"] = conv_forward, pool_forward
            # The graphs are built once; retain_graph lets each round time the backward alone.
            conv_graph = torch.nn.functional.conv2d(txg, twg, tbg, padding=p)
            pool_graph = torch.nn.functional.max_pool2d(tyg, 2)
            backward["torch"] = lambda: torch.autograd.grad(conv_graph, (txg, twg, tbg), tdy, retain_graph=True)
            pool_back["torch"] = lambda: torch.autograd.grad(pool_graph, (tyg,), tdpool, retain_graph=True)
            pool_step["torch"] = lambda: torch.autograd.grad(torch.nn.functional.max_pool2d(tyg, 2), (tyg,), tdpool)

        t_fwd, t_bwd = _median_times(forward, rounds), _median_times(backward, rounds)
        t_pool, t_pool_back = _median_times(pool, rounds), _median_times(pool_back, rounds)
        t_pool_step = _median_times(pool_step, rounds)

        # Naive loops on a reduced batch, scaled linearly in N (they are linear in N).
        xs, ys = x[:naive_batch], y[:naive_batch]
        scale = n / naive_batch
        naive_conv = _median_times({"n": lambda: reference.conv2d_naive(xs, w, b, padding=p)}, 1)["n"] * scale
        naive_pool = _median_times({"n": lambda: reference.max_pool2d_naive(ys, 2)}, 1)["n"] * scale

        rows += [
            Row("conv2d forward", label, t_fwd["cnnlib"], naive_conv, t_fwd.get("torch"),
                flops / t_fwd["cnnlib"] / 1e9, flops / t_fwd["matmul"] / 1e9),
            Row("conv2d backward", label, t_bwd["cnnlib"], None, t_bwd.get("torch"),
                2 * flops / t_bwd["cnnlib"] / 1e9, 2 * flops / t_bwd["matmul"] / 1e9),
            Row("max_pool2d 2x2 forward", label, t_pool["cnnlib"], naive_pool, t_pool.get("torch")),
            Row("max_pool2d 2x2 backward", label, t_pool_back["cnnlib"], None, t_pool_back.get("torch")),
            Row("max_pool2d 2x2 forward+backward", label, t_pool_step["cnnlib"], None, t_pool_step.get("torch")),
        ]
    return rows


TRAIN_SCRIPT = """
import json, time
import numpy as np
import cnnlib
from cnnlib import data, nn, optim, train
cnnlib.seed(0)
x_train, y_train, x_test, y_test = data.load_digits()
x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
f32 = dict(dtype=np.float32)
model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, **f32), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(16, 32, 3, padding=1, **f32), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(128, 64, **f32), nn.ReLU(), nn.Linear(64, 10, **f32))
optimizer = optim.Adam(model.parameters(), lr=3e-3)
start = time.perf_counter()
reached = None
for epoch in range(1, 31):
    train.fit(model, x_train, y_train, optimizer, epochs=1, batch_size=32, progress=False)
    accuracy = train.evaluate(model, x_test, y_test)[1]
    if accuracy >= 0.97 and reached is None:
        reached = (epoch, time.perf_counter() - start, accuracy)
        break
# VmHWM belongs to this address space; ru_maxrss would include the parent's peak from before exec.
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
print(json.dumps(dict(reached=reached, peak_mb=peak)))
"""


def bench_training() -> dict:
    """Train the digits CNN in a fresh interpreter (so its peak memory is its own) until 97%."""
    out = subprocess.run([sys.executable, "-c", TRAIN_SCRIPT], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ms(t):
    return "-" if t is None else f"{t * 1e3:.1f}"


def _ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}"


def format_rows(rows: list[Row], markdown: bool) -> str:
    header = ["op", "shape", "cnnlib ms", "naive ms", "torch ms", "cnnlib/torch", "naive/cnnlib",
              "cnnlib GFLOP/s", "matmul GFLOP/s"]
    table = [[r.op, r.shape, _ms(r.cnnlib), _ms(r.naive), _ms(r.torch), _ratio(r.cnnlib, r.torch),
              _ratio(r.naive, r.cnnlib), "-" if r.gflops is None else f"{r.gflops:.0f}",
              "-" if r.matmul_gflops is None else f"{r.matmul_gflops:.0f}"] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in table])
    widths = [max(len(str(v)) for v in col) for col in zip(header, *table)]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(row, widths)) for row in [header, *table])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cnnlib.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds per contender (median reported)")
    parser.add_argument("--naive-batch", type=int, default=1, help="batch size for the naive loops")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (for the README)")
    parser.add_argument("--no-train", action="store_true", help="skip the training benchmark")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.naive_batch < 1:
        parser.error("--rounds and --naive-batch must be positive")
    torch = _torch()
    print(f"numpy {np.__version__}, torch {torch.__version__ if torch else 'not installed'}; "
          f"float32; medians of {args.rounds} alternating rounds")
    print(format_rows(bench_layers(args.rounds, args.naive_batch), args.markdown))
    if not args.no_train:
        result = bench_training()
        if result["reached"] is None:
            print(f"digits CNN: did not reach 97% in 30 epochs; peak memory {result['peak_mb']:.0f} MB")
        else:
            epoch, seconds, accuracy = result["reached"]
            print(f"digits CNN: {accuracy:.1%} test accuracy after {epoch} epochs in {seconds:.1f} s; "
                  f"peak memory {result['peak_mb']:.0f} MB (targets: < 30 s, < 500 MB)")


if __name__ == "__main__":
    main()
