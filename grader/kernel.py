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


# Printed output a cell may send. The grader keeps 1 MiB of it (grader/execute.py's
# max_output_bytes) and drops the rest as it arrives; but a flood printed faster than a busy
# grader reads it used to queue in this kernel's memory: 150 prints of 1 MiB raised MemoryError
# under the tests' 1 GiB limit, on a loaded machine only, so the grade depended on the load.
OUTPUT_BYTES = 16 * 2**20


def _cap_output(limit: int = OUTPUT_BYTES) -> None:
    """Send at most ``limit`` characters of each cell's stdout and stderr; drop the rest here."""
    from ipykernel.iostream import OutStream

    write, sent = OutStream.write, {}

    def capped(self, string):
        key = (self.name, self.parent_header.get("msg_id"))  # the cell's execute request
        room = limit - sent.get(key, 0)
        if room > 0:
            sent[key] = sent.get(key, 0) + len(string)
            write(self, string[:room])
        return len(string)

    OutStream.write = capped


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
    # The kernel's half of a graded call (grader.remote) and the tripwire it applies, imported
    # now: before the notebook's first cell, and in a warm kernel while the previous student
    # is still being graded.  Nothing that scores runs here (grader/scoring.py).
    if opts.preload:
        try:
            import numpy  # noqa: F401

            from grader import plain, remote, tripwire  # noqa: F401
        except Exception as exc:  # the graded calls will report it
            print(f"grader.kernel: preload failed: {exc}", file=sys.stderr)
    # ipykernel imports debugpy (about 0.1 s) only to offer a debugger to a front end;
    # nobody debugs an autograded notebook.
    sys.modules.setdefault("debugpy", None)
    _cap_output()
    sys.argv = [sys.argv[0], *rest]
    from ipykernel import kernelapp
    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
