"""Build the course download: the chapter notebooks, a cnnlib wheel, pinned requirements, a README.

    python book/download.py _build/html/cnn-course.zip

The requirements pin every package the chapters import, and everything those need, at the
versions this build ran with, read from the environment that runs this script: what a reader
installs is what executed the book.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
FOLDER = "cnn-course"
# Beyond cnnlib's own dependencies the chapters import PyTorch (as the oracle they compare
# against), and a reader needs something to open notebooks with.
EXTRA = ["torch", "jupyterlab"]

README = """\
# Convolutional Neural Networks, from the ground up: the chapters to run

The book's twelve chapters as Jupyter notebooks, with `cnnlib`, the small NumPy engine they are
written with. In this folder, with Python {python} (the version that built the book; the pinned
versions may need at least that one):

    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
    .venv/bin/jupyter lab notebooks

(On Windows: `.venv\\Scripts\\pip` and `.venv\\Scripts\\jupyter`.) The first command installs the
exact versions that executed the book, listed in `requirements.txt`, and the engine from
`{wheel}`; the second opens the chapters in your browser. Nothing else is downloaded when
they run: the data sets ship inside the installed packages.

On Linux, pip takes PyTorch's large CUDA build by default. The chapters need only its CPU
build: add `--extra-index-url https://download.pytorch.org/whl/cpu` to the first command to get it.
"""


def pinned_closure(names: list[str]) -> dict[str, str]:
    """Every installed distribution `names` need (markers evaluated here), name -> version."""
    pins: dict[str, str] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in pins:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{name} is not installed in {sys.prefix}: run `make setup`") from None
        pins[name] = dist.version.split("+")[0]     # torch 2.13.0+cpu is 2.13.0 on PyPI
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return pins


def build_wheel(out: Path) -> Path:
    """A wheel of cnnlib alone, built from a copy of the sources (the checkout stays clean)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "src")
        shutil.copytree(ROOT / "cnnlib", src / "cnnlib",
                        ignore=shutil.ignore_patterns("__pycache__", "*.md"))
        shutil.copy(ROOT / "README.md", src)
        text = (ROOT / "pyproject.toml").read_text()
        only_cnnlib, n = re.subn(r'(?m)^include = \[.*\]$', 'include = ["cnnlib", "cnnlib.*"]', text)
        if n != 1:
            raise SystemExit("pyproject.toml: no `include = [...]` line under "
                             "[tool.setuptools.packages.find]")
        (src / "pyproject.toml").write_text(only_cnnlib)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                        "--no-build-isolation", "-w", str(out), str(src)], check=True)
    (wheel,) = out.glob("cnnlib-*.whl")
    return wheel


def main(target: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = [Requirement(d).name for d in project["dependencies"]] + EXTRA
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp, FOLDER)
        (stage / "notebooks").mkdir(parents=True)
        for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
            shutil.copy(notebook, stage / "notebooks")
        wheel = build_wheel(stage)
        pins = pinned_closure(needed)
        lines = [f"{name}=={version}" for name, version in sorted(pins.items())]
        (stage / "requirements.txt").write_text(
            "# Pinned by book/download.py from the environment that built the book.\n"
            + "\n".join(lines) + f"\n./{wheel.name}\n")
        python = ".".join(map(str, sys.version_info[:3]))
        (stage / "README.md").write_text(README.format(python=python, wheel=wheel.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(stage.rglob("*")):
                archive.write(path, path.relative_to(stage.parent))
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB, {len(pins)} pinned packages)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python book/download.py OUT.zip")
    main(Path(sys.argv[1]))
