"""Benchmark: `python -m grader autograde` against plain sequential `nbgrader autograde`.

    python -m grader.bench [--n 100] [--workers N]

Generates N submissions of a1-convolution (correct ones and typical bugs, from
tests/planted), grades them with both, in fresh course copies under a temporary
folder, and prints submissions per minute and the ratio.  A script, not a test.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import course

VARIANTS = ["correct-loops", "correct-im2col", "flipped-kernel", "forgot-stride", "bias-ignored",
            "round-up", "stub"]


def _planted():
    path = course.REPO / "tests" / "planted" / "a1_convolution.py"
    spec = importlib.util.spec_from_file_location("planted_a1", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(cmd, cwd, env=None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode not in (0,):
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}")
    return took


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    planted = _planted()
    tmp = Path(tempfile.mkdtemp(prefix="grader-bench-"))
    os.chmod(tmp, 0o755)
    py = sys.executable
    try:
        # ours
        ours = tmp / "ours"
        shutil.copytree(course.CODE / "source", ours / "source")
        env = dict(os.environ, GRADER_COURSE_DIR=str(ours), PYTHONWARNINGS="ignore")
        _run([py, "-m", "grader", "release", "a1-convolution"], ours, env)
        release = ours / "release" / "a1-convolution" / "a1-convolution.ipynb"
        subs = tmp / "submissions"
        for i in range(args.n):
            planted.make(release, subs / f"s{i:03d}" / "a1-convolution", VARIANTS[i % len(VARIANTS)])
        cmd = [py, "-m", "grader", "autograde", "a1-convolution", "--submissions", str(subs),
               "--no-progress"]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        t_ours = _run(cmd, ours, env)

        # plain nbgrader, sequential, default configuration (no sandbox)
        plain = tmp / "plain"
        shutil.copytree(course.CODE / "source", plain / "source")
        (plain / "nbgrader_config.py").write_text(
            "c = get_config()\n"
            "c.CourseDirectory.course_id = 'cnn-course'\n"
            "c.ClearSolutions.code_stub = {'python': '# YOUR CODE HERE\\nraise NotImplementedError()'}\n")
        nbgrader = [py, "-m", "nbgrader"]
        penv = dict(os.environ, PATH=os.path.dirname(py) + os.pathsep + os.environ.get("PATH", ""),
                    PYTHONWARNINGS="ignore")
        _run(nbgrader + ["generate_assignment", "a1-convolution", "--force"], plain, penv)
        shutil.copytree(subs, plain / "submitted")
        t_plain = _run(nbgrader + ["autograde", "a1-convolution", "--force"], plain, penv)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    rate_ours, rate_plain = 60 * args.n / t_ours, 60 * args.n / t_plain
    workers = args.workers or os.cpu_count()
    print(f"{args.n} submissions of a1-convolution on {os.cpu_count()} cores")
    print(f"python -m grader autograde ({workers} workers, sandboxed): {t_ours:7.1f} s  "
          f"{rate_ours:6.1f} submissions/min")
    print(f"nbgrader autograde (sequential, no sandbox):  {t_plain:7.1f} s  "
          f"{rate_plain:6.1f} submissions/min")
    print(f"ratio: {rate_ours / rate_plain:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
