"""Kernel entry point used by the sandbox: resource limits, then ipykernel.

``python -m grader.kernel --memory-mb 2048 --nproc 64 -- -f connection.json``
"""
from __future__ import annotations

import argparse
import resource
import sys


def _limit(which: int, value: int) -> None:
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    try:
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError) as exc:  # pragma: no cover - platform dependent
        print(f"grader.kernel: could not set limit {which}: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--" in argv:
        ours, rest = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    else:
        ours, rest = [], argv
    parser = argparse.ArgumentParser(prog="python -m grader.kernel")
    parser.add_argument("--memory-mb", type=int, default=0)
    parser.add_argument("--nproc", type=int, default=0)
    parser.add_argument("--fsize-mb", type=int, default=0)
    parser.add_argument("--cpu-seconds", type=int, default=0)
    parser.add_argument("--preload", action="store_true")
    opts = parser.parse_args(ours)
    if opts.memory_mb:
        _limit(resource.RLIMIT_AS, opts.memory_mb * 2**20)
    if opts.nproc:
        _limit(resource.RLIMIT_NPROC, opts.nproc)
    if opts.fsize_mb:
        _limit(resource.RLIMIT_FSIZE, opts.fsize_mb * 2**20)
    if opts.cpu_seconds:
        _limit(resource.RLIMIT_CPU, opts.cpu_seconds)
    _limit(resource.RLIMIT_CORE, 0)
    # The test helpers and the tripwire seal themselves when imported: importing them here,
    # before the notebook's first cell, is what makes the rules they apply the ones on disk
    # whatever the notebook does later (grader/AUTHORING.md, "The security model").
    try:
        from grader import checks
    except Exception as exc:  # the tests will report it
        print(f"grader.kernel: cannot import grader.checks: {exc}", file=sys.stderr)
    else:
        if opts.preload:
            # The private cnnlib the hidden tests compare with, loaded now too (in a warm
            # kernel, while the previous student is still being graded): loaded later, it
            # would go through an import system the notebook may have changed.  Only modules
            # and the grader's private caches: the user namespace stays empty.
            try:
                checks.reference(*checks.REFERENCE_MODULES)
            except Exception as exc:  # the tests will report it
                print(f"grader.kernel: preload failed: {exc}", file=sys.stderr)
    # ipykernel imports debugpy (about 0.1 s) only to offer a debugger to a front end;
    # nobody debugs an autograded notebook.
    sys.modules.setdefault("debugpy", None)
    sys.argv = [sys.argv[0], *rest]
    from ipykernel import kernelapp
    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
