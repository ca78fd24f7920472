"""Benchmark: ``python -m cnnlib.bench`` (``--help`` for options).

Times cnnlib's fast path, the naive loops of :mod:`cnnlib.reference` (on a reduced batch, scaled
up linearly) and PyTorch on the CPU when it is installed, on float32 problems. The contenders
take turns in blocks of rounds, so that load from other processes on a shared machine hits them
alike, each block after a pause that lets the other library's threads settle. The times are
medians over all rounds; a ratio is the median, over the blocks, of the ratio of two blocks that
ran side by side, so that load which comes and goes during a run barely moves it.

More columns put each time in context. "x GEMM" divides a convolution's time by a bare
NumPy matmul of the very GEMM it performs, timed in the same blocks: the forward by
``W (C_out x C_in k^2) @ columns (C_in k^2 x N H_out W_out)``, the backward by its two GEMMs
(``dW = dy @ columns^T`` and ``dcolumns = W^T @ dy``), one per group for a grouped convolution.
"peak MB" is the most memory one call allocates at any moment, result included (tracemalloc
around a single call, apart from the timed rounds), and "x in+out" the same as a multiple of the
bytes of the call's array arguments and results. The training-step row times one step (forward,
backward, Adam) of the LeNet-style network of chapter 9 on 64 MNIST digits in both libraries.
Last, the digits CNN is trained in a fresh process to measure its time, accuracy and peak memory.
"""
from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from math import prod

import numpy as np

from . import functional as F
from . import reference


@dataclass(frozen=True)
class Case:
    """One convolution problem: x (n, c_in, size, size), a k x k kernel, float32."""
    n: int
    c_in: int
    c_out: int
    size: int
    kernel: int
    padding: int
    stride: int = 1
    groups: int = 1
    pool: bool = True  # also time max pooling of this convolution's output

    @property
    def label(self) -> str:
        stride = f" s{self.stride}" if self.stride != 1 else ""
        groups = f" groups={self.groups}" if self.groups != 1 else ""
        return (f"N={self.n} {self.c_in}->{self.c_out} {self.size}x{self.size} k{self.kernel}"
                f"{stride} p{self.padding}{groups}")

    @property
    def args(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, groups=self.groups)


CASES = [
    Case(32, 64, 64, 32, 3, 1),
    Case(32, 32, 128, 16, 3, 1),
    Case(64, 1, 32, 28, 5, 2),
    Case(32, 64, 64, 32, 3, 1, stride=2, pool=False),   # strided
    Case(32, 64, 64, 32, 3, 1, groups=64, pool=False),  # depthwise
]
# --quick: the same kinds of problem, tiny, to check that the bench runs (its numbers mean nothing).
QUICK_CASES = [
    Case(2, 4, 8, 8, 3, 1),
    Case(2, 4, 8, 8, 3, 1, stride=2, pool=False),
    Case(2, 4, 4, 8, 3, 1, groups=4, pool=False),
]


@dataclass
class Row:
    op: str
    shape: str
    cnnlib: float
    naive: float | None = None
    torch: float | None = None
    gemm: float | None = None        # seconds of the bare GEMM(s) the op performs
    gflops: float | None = None
    peak: int | None = None          # bytes allocated at the peak of one call
    io_bytes: int | None = None      # bytes of the call's array arguments and results
    vs_torch: float | None = None    # cnnlib over torch and over the GEMM, block by block
    vs_gemm: float | None = None     # (Timing.ratio); else the ratio of the times above


# After a GEMM, OpenBLAS's worker threads spin for about 0.1 s waiting for more work, and
# PyTorch's OpenMP threads do the same; measured here, a PyTorch convolution timed right after a
# NumPy matmul took up to 4x its time. So contenders take turns in blocks of rounds, and each
# block starts after a pause that lets the other library's threads go to sleep.
SETTLE_S = 0.3
BLOCK = 3


@dataclass
class Timing:
    """Each contender's seconds per call, block by block of alternating rounds."""
    blocks: dict[str, list[list[float]]]

    def __getitem__(self, name: str) -> float:
        """The contender's median over all its rounds."""
        return float(np.median([t for block in self.blocks[name] for t in block]))

    def get(self, name: str) -> float | None:
        return self[name] if name in self.blocks else None

    def ratio(self, a: str, b: str) -> float | None:
        """Median over the blocks of a's block median over b's, taken side by side."""
        if b not in self.blocks:
            return None
        return float(np.median([np.median(x) / np.median(y) for x, y in zip(self.blocks[a], self.blocks[b])]))


def _timing(contenders: dict, rounds: int, settle: float = SETTLE_S) -> Timing:
    """Time each contender ``rounds`` times, in alternating blocks of BLOCK rounds."""
    blocks = {name: [] for name in contenders}
    for done in range(0, rounds, BLOCK):
        for name, fn in contenders.items():
            time.sleep(settle)
            fn()  # untimed: wakes this library's threads, touches its allocations
            block = []
            for _ in range(min(BLOCK, rounds - done)):
                start = time.perf_counter()
                fn()
                block.append(time.perf_counter() - start)
            blocks[name].append(block)
    return Timing(blocks)


def peak_bytes(fn) -> int:
    """The most memory that one call of ``fn`` holds at any moment, its result included.

    tracemalloc sees NumPy's array buffers; tracing starts just before the call, so memory
    allocated earlier is not counted (and freeing it does not lower the count)."""
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
        del result  # alive until the peak is read, as the caller would keep it
        return peak
    finally:
        tracemalloc.stop()


def _nbytes(*arrays) -> int:
    return sum(a.nbytes for a in arrays if a is not None)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return torch


def bench_case(case: Case, rounds: int, naive_batch: int, settle: float = SETTLE_S) -> list[Row]:
    """Rows for one convolution problem: conv2d forward and backward, then max pooling."""
    torch = _torch()
    rng = np.random.default_rng(0)
    n, c_in, c_out, k, g = case.n, case.c_in, case.c_out, case.kernel, case.groups
    x = rng.standard_normal((n, c_in, case.size, case.size), dtype=np.float32)
    w = rng.standard_normal((c_out, c_in // g, k, k), dtype=np.float32)
    b = rng.standard_normal(c_out, dtype=np.float32)
    y = F.conv2d(x, w, b, **case.args)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx, dw, db = F.conv2d_backward(dy, x, w, **case.args)

    # The GEMM each pass performs, per group: (C_out/g x C_in/g k^2) @ (C_in/g k^2 x N H_out W_out).
    a = rng.standard_normal((g, c_out // g, c_in // g * k * k), dtype=np.float32)
    cols = rng.standard_normal((g, c_in // g * k * k, n * prod(y.shape[2:])), dtype=np.float32)
    if g == 1:
        a, cols = a[0], cols[0]
    grad_cols = a @ cols
    flops = 2 * a.size * cols.shape[-1]
    forward = {"cnnlib": lambda: F.conv2d(x, w, b, **case.args), "matmul": lambda: a @ cols}
    # The backward does two such GEMMs: dW = dy cols^T and dcols = W^T dy.
    backward = {"cnnlib": lambda: F.conv2d_backward(dy, x, w, **case.args),
                "matmul": lambda: (grad_cols @ cols.swapaxes(-1, -2), a.swapaxes(-1, -2) @ grad_cols)}
    if torch is not None:
        tx, tw, tb, tdy = (torch.from_numpy(v) for v in (x, w, b, dy))
        txg, twg, tbg = (t.clone().requires_grad_() for t in (tx, tw, tb))

        def conv_forward():
            with torch.no_grad():
                return torch.nn.functional.conv2d(tx, tw, tb, **case.args)

        forward["torch"] = conv_forward
        # The graph is built once; retain_graph lets each round time the backward alone.
        conv_graph = torch.nn.functional.conv2d(txg, twg, tbg, **case.args)
        backward["torch"] = lambda: torch.autograd.grad(conv_graph, (txg, twg, tbg), tdy, retain_graph=True)
    t_fwd, t_bwd = _timing(forward, rounds, settle), _timing(backward, rounds, settle)

    # Naive loops on a reduced batch, scaled linearly in N (they are linear in N).
    xs, scale = x[:naive_batch], n / min(naive_batch, n)
    naive_conv = _timing({"n": lambda: reference.conv2d_naive(xs, w, b, **case.args)}, 1, 0)["n"] * scale
    rows = [
        Row("conv2d forward", case.label, t_fwd["cnnlib"], naive_conv, t_fwd.get("torch"), t_fwd["matmul"],
            flops / t_fwd["cnnlib"] / 1e9, peak_bytes(forward["cnnlib"]), _nbytes(x, w, b, y),
            t_fwd.ratio("cnnlib", "torch"), t_fwd.ratio("cnnlib", "matmul")),
        Row("conv2d backward", case.label, t_bwd["cnnlib"], None, t_bwd.get("torch"), t_bwd["matmul"],
            2 * flops / t_bwd["cnnlib"] / 1e9, peak_bytes(backward["cnnlib"]), _nbytes(dy, x, w, dx, dw, db),
            t_bwd.ratio("cnnlib", "torch"), t_bwd.ratio("cnnlib", "matmul")),
    ]
    if case.pool:
        rows += bench_pool(y, case.label, rounds, naive_batch, settle)
    return rows


def bench_pool(y: np.ndarray, label: str, rounds: int, naive_batch: int, settle: float = SETTLE_S) -> list[Row]:
    """Rows for 2x2 max pooling of y: forward, backward from saved indices, both."""
    torch = _torch()
    pooled, indices = F.max_pool2d(y, 2, return_indices=True)
    dpool = np.ones_like(pooled)
    dx = F.max_pool2d_backward(dpool, y, 2, indices=indices)
    pool = {"cnnlib": lambda: F.max_pool2d(y, 2)}
    # Both backward passes start from the argmax indices their training forward saved.
    pool_back = {"cnnlib": lambda: F.max_pool2d_backward(dpool, y, 2, indices=indices)}

    def pool_step():
        _, indices = F.max_pool2d(y, 2, return_indices=True)
        return F.max_pool2d_backward(dpool, y, 2, indices=indices)

    pool_step = {"cnnlib": pool_step}
    if torch is not None:
        ty, tdpool = torch.from_numpy(y), torch.from_numpy(dpool)
        tyg = ty.clone().requires_grad_()

        def pool_forward():
            with torch.no_grad():
                return torch.nn.functional.max_pool2d(ty, 2)

        pool["torch"] = pool_forward
        pool_graph = torch.nn.functional.max_pool2d(tyg, 2)
        pool_back["torch"] = lambda: torch.autograd.grad(pool_graph, (tyg,), tdpool, retain_graph=True)
        pool_step["torch"] = lambda: torch.autograd.grad(torch.nn.functional.max_pool2d(tyg, 2), (tyg,), tdpool)
    ys, scale = y[:naive_batch], len(y) / min(naive_batch, len(y))
    naive = _timing({"n": lambda: reference.max_pool2d_naive(ys, 2)}, 1, 0)["n"] * scale
    t_pool, t_back, t_step = (_timing(c, rounds, settle) for c in (pool, pool_back, pool_step))
    return [
        Row("max_pool2d 2x2 forward", label, t_pool["cnnlib"], naive, t_pool.get("torch"),
            peak=peak_bytes(pool["cnnlib"]), io_bytes=_nbytes(y, pooled),
            vs_torch=t_pool.ratio("cnnlib", "torch")),
        Row("max_pool2d 2x2 backward", label, t_back["cnnlib"], None, t_back.get("torch"),
            peak=peak_bytes(pool_back["cnnlib"]), io_bytes=_nbytes(dpool, y, indices, dx),
            vs_torch=t_back.ratio("cnnlib", "torch")),
        Row("max_pool2d 2x2 forward+backward", label, t_step["cnnlib"], None, t_step.get("torch"),
            peak=peak_bytes(pool_step["cnnlib"]), io_bytes=_nbytes(y, dpool, dx),
            vs_torch=t_step.ratio("cnnlib", "torch")),
    ]


def bench_layers(rounds: int, naive_batch: int, cases=CASES, settle: float = SETTLE_S) -> list[Row]:
    return [row for case in cases for row in bench_case(case, rounds, naive_batch, settle)]


def mnist_cnn():
    """The LeNet-style MNIST network of chapter 9 (section ch9-mnist), float32, no biases."""
    from . import nn
    f32 = dict(bias=False, dtype=np.float32)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, **f32), nn.ReLU(), nn.MaxPool2d(2),    # 32x14x14
        nn.Conv2d(32, 64, 3, padding=1, **f32), nn.ReLU(), nn.MaxPool2d(2),   # 64x7x7
        nn.Flatten(), nn.Linear(64 * 7 * 7, 10, **f32),                      # 10 scores
    )


def torch_mnist_cnn(torch):
    """:func:`mnist_cnn` built from PyTorch's layers."""
    tnn = torch.nn
    return tnn.Sequential(
        tnn.Conv2d(1, 32, 3, padding=1, bias=False), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(32, 64, 3, padding=1, bias=False), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(), tnn.Linear(64 * 7 * 7, 10, bias=False))


def bench_training_step(rounds: int, batch: int = 64, settle: float = SETTLE_S) -> Row:
    """ms per training step (forward, cross-entropy, backward, Adam) of :func:`mnist_cnn` on one
    batch of MNIST digits, against the same network in PyTorch; both keep training as timed."""
    from . import data, losses, optim
    from .random import seed
    torch = _torch()
    x, y = (v[:batch] for v in data.load_mnist()[:2])
    x = x.astype(np.float32)
    seed(0)
    model, loss = mnist_cnn(), losses.CrossEntropyLoss()
    adam = optim.Adam(model.parameters(), lr=1e-3)

    def step():
        value = loss(model(x), y)
        adam.zero_grad()
        model.backward(loss.backward())
        adam.step()
        return value

    steps = {"cnnlib": step}
    if torch is not None:
        torch.manual_seed(0)
        net = torch_mnist_cnn(torch)
        torch_adam = torch.optim.Adam(net.parameters(), lr=1e-3)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def torch_step():
            value = torch.nn.functional.cross_entropy(net(tx), ty)
            torch_adam.zero_grad()
            value.backward()
            torch_adam.step()
            return value

        steps["torch"] = torch_step
    t = _timing(steps, rounds, settle)
    return Row("training step (fwd+bwd+Adam)", f"ch9 MNIST CNN, N={batch} 1x28x28", t["cnnlib"],
               None, t.get("torch"), peak=peak_bytes(step), vs_torch=t.ratio("cnnlib", "torch"))


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


def _ratio(a, b, side_by_side=None):
    if side_by_side is not None:
        return f"{side_by_side:.2f}"
    return "-" if a is None or b is None else f"{a / b:.2f}"


HEADER = ["op", "shape", "cnnlib ms", "naive ms", "torch ms", "cnnlib/torch", "naive/cnnlib",
          "GEMM ms", "x GEMM", "cnnlib GFLOP/s", "peak MB", "x in+out"]


def format_rows(rows: list[Row], markdown: bool) -> str:
    table = [[r.op, r.shape, _ms(r.cnnlib), _ms(r.naive), _ms(r.torch), _ratio(r.cnnlib, r.torch, r.vs_torch),
              _ratio(r.naive, r.cnnlib), _ms(r.gemm), _ratio(r.cnnlib, r.gemm, r.vs_gemm),
              "-" if r.gflops is None else f"{r.gflops:.0f}",
              "-" if r.peak is None else f"{r.peak / 2**20:.1f}", _ratio(r.peak, r.io_bytes)] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in table])
    widths = [max(len(str(v)) for v in col) for col in zip(HEADER, *table)]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(row, widths)) for row in [HEADER, *table])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cnnlib.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per contender (median reported)")
    parser.add_argument("--naive-batch", type=int, default=1, help="batch size for the naive loops")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (for the README)")
    parser.add_argument("--no-train", action="store_true", help="skip the digits training benchmark")
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes, one round, no pauses, no digits training: checks that the "
                             "bench runs (its numbers mean nothing)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.naive_batch < 1:
        parser.error("--rounds and --naive-batch must be positive")
    rounds, cases, settle = (1, QUICK_CASES, 0.0) if args.quick else (args.rounds, CASES, SETTLE_S)
    torch = _torch()
    print(f"numpy {np.__version__}, torch {torch.__version__ if torch else 'not installed'}; "
          f"float32; medians of {rounds} rounds in alternating blocks of {BLOCK}, ratios block by block")
    rows = bench_layers(rounds, args.naive_batch, cases, settle) + [bench_training_step(rounds, settle=settle)]
    print(format_rows(rows, args.markdown))
    if not (args.no_train or args.quick):
        result = bench_training()
        if result["reached"] is None:
            print(f"digits CNN: did not reach 97% in 30 epochs; peak memory {result['peak_mb']:.0f} MB")
        else:
            epoch, seconds, accuracy = result["reached"]
            print(f"digits CNN: {accuracy:.1%} test accuracy after {epoch} epochs in {seconds:.1f} s; "
                  f"peak memory {result['peak_mb']:.0f} MB (targets: < 30 s, < 500 MB)")


if __name__ == "__main__":
    main()
