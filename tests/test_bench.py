"""The structure of `python -m cnnlib.bench` on tiny shapes; never its timings."""
import numpy as np
import torch

from cnnlib import bench


def test_quick_run_prints_every_column_and_row(capsys):
    bench.main(["--quick"])
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("op "))
    for column in ("cnnlib/torch", "GEMM ms", "x GEMM", "peak MB", "x in+out"):
        assert column in header
    for case in bench.QUICK_CASES:
        assert f"conv2d forward                   {case.label}" in out
        assert f"conv2d backward                  {case.label}" in out
    assert "training step (fwd+bwd+Adam)" in out
    assert "digits CNN" not in out  # --quick skips the training run


def test_conv_rows_have_a_gemm_baseline_and_a_memory_peak():
    case = bench.QUICK_CASES[0]
    rows = bench.bench_case(case, rounds=1, naive_batch=1, settle=0)
    assert [r.op for r in rows] == ["conv2d forward", "conv2d backward", "max_pool2d 2x2 forward",
                                    "max_pool2d 2x2 backward", "max_pool2d 2x2 forward+backward"]
    for row in rows:
        assert row.cnnlib > 0 and row.torch > 0 and row.peak > 0 and row.io_bytes > 0
        assert (row.gemm is not None) == row.op.startswith("conv2d")
    x, y = 4 * case.n * case.c_in * case.size**2, 4 * case.n * case.c_out * case.size**2
    w, b = 4 * case.c_out * case.c_in * case.kernel**2, 4 * case.c_out
    assert rows[0].io_bytes == x + w + b + y
    assert rows[1].io_bytes == y + 2 * (x + w) + b  # dy, x, w in; dx, dw, db out


def test_strided_and_depthwise_rows_are_benchmarked():
    assert any(c.stride == 2 and c.groups == 1 for c in bench.CASES)
    assert any(c.groups == c.c_in == c.c_out > 1 for c in bench.CASES)
    depthwise = next(c for c in bench.QUICK_CASES if c.groups > 1)
    rows = bench.bench_case(depthwise, rounds=1, naive_batch=1, settle=0)
    assert [r.op for r in rows] == ["conv2d forward", "conv2d backward"]
    assert "groups=" in depthwise.label


def test_peak_bytes_counts_what_one_call_allocates():
    kept = np.ones(10**6)  # allocated before: not counted
    assert bench.peak_bytes(lambda: np.ones(10**6)) >= 8 * 10**6
    assert bench.peak_bytes(lambda: np.ones(10**6).sum()) >= 8 * 10**6   # a temporary counts
    assert bench.peak_bytes(lambda: kept[:10].copy()) < 10**5


def test_training_step_network_is_the_chapter_9_network_in_both_libraries():
    model = bench.mnist_cnn()
    assert model.num_parameters() == 50_080
    assert sum(p.numel() for p in bench.torch_mnist_cnn(torch).parameters()) == 50_080
    x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    assert model(x).shape == (2, 10) and model(x).dtype == np.float32


def test_markdown_table_has_one_cell_per_column():
    rows = [bench.Row("conv2d forward", "N=1", 0.002, gemm=0.001, peak=2**20, io_bytes=2**19),
            bench.Row("training step", "N=64", 0.03, torch=0.01)]
    lines = bench.format_rows(rows, markdown=True).splitlines()
    assert all(line.count("|") == len(bench.HEADER) + 1 for line in lines)
    cells = [dict(zip(bench.HEADER, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]
    assert cells[0]["GEMM ms"] == "1.0" and cells[0]["x GEMM"] == "2.00"
    assert cells[0]["peak MB"] == "1.0" and cells[0]["x in+out"] == "2.00"
    assert cells[1]["cnnlib/torch"] == "3.00" and cells[1]["x GEMM"] == "-"


def test_ratios_are_taken_block_by_block_so_load_that_comes_and_goes_barely_moves_them():
    # cnnlib takes twice torch's time whenever they run side by side, but the machine was busy
    # during torch's second block and cnnlib's third: the ratio of the medians says 0.67.
    timing = bench.Timing({"cnnlib": [[1.0], [1.0], [3.0]], "torch": [[0.5], [1.5], [1.5]]})
    assert timing["cnnlib"] / timing["torch"] < 0.7
    assert timing.ratio("cnnlib", "torch") == 2.0 and timing.ratio("cnnlib", "matmul") is None
    row = bench.Row("conv2d forward", "N=1", timing["cnnlib"], torch=timing["torch"], vs_torch=2.0)
    assert " 2.00 " in bench.format_rows([row], markdown=True)


def test_each_contender_runs_in_alternating_blocks():
    calls = []
    timing = bench._timing({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=5, settle=0)
    assert [len(block) for block in timing.blocks["a"]] == [3, 2] == [len(b) for b in timing.blocks["b"]]
    assert "".join(calls) == "aaaa" "bbbb" "aaa" "bbb"  # one untimed call before each block
