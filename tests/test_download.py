"""The course download works away from this repository: unpack, the README's first command,
then a chapter executes in the fresh environment, with the cnnlib of the wheel."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = "notebooks/01_images_and_dense_layers.ipynb"

RUN_CHAPTER = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], 4)
NotebookClient(nb, timeout=300, kernel_name="python3",
               resources={"metadata": {"path": "notebooks"}}).execute()
nbformat.write(nb, sys.argv[2])
"""


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    out = tmp_path_factory.mktemp("download")
    target = out / "cnn-course.zip"
    subprocess.run([sys.executable, str(ROOT / "book" / "download.py"), str(target)], check=True)
    unpacked = out / "unpacked"
    with zipfile.ZipFile(target) as archive:
        archive.extractall(unpacked)
    folder = unpacked / "cnn-course"
    yield folder
    shutil.rmtree(folder / ".venv", ignore_errors=True)     # 1.6 GB, PyTorch included


def test_the_download_holds_the_chapters_the_wheel_and_pinned_requirements(course):
    chapters = sorted(p.name for p in (course / "notebooks").glob("*.ipynb"))
    assert chapters == sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    (wheel,) = course.glob("cnnlib-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    # every package of the engine, and nothing of the grader
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "cnnlib").rglob("__init__.py")}
    assert packages == {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    assert not any(n.startswith("grader/") for n in names)
    lines = [line for line in (course / "requirements.txt").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines[-1] == f"./{wheel.name}"
    pins = dict(line.split("==") for line in lines[:-1])
    assert {"numpy", "matplotlib", "scikit-learn", "mlxtend", "torch", "jupyterlab"} <= set(pins)


def readme_commands(readme: str) -> list[str]:
    return [line.strip() for line in readme.splitlines() if line.startswith("    ")]


def test_the_readme_commands_install_the_course_and_a_chapter_runs(course):
    setup, open_notebooks = readme_commands((course / "README.md").read_text())
    assert open_notebooks == ".venv/bin/jupyter lab notebooks"
    # Nothing of this checkout or its environment may leak into the reader's: a bare
    # environment: the reader's PATH (without this checkout's venv), their pip settings.
    path = [p for p in os.environ["PATH"].split(os.pathsep) if not Path(p).is_relative_to(ROOT)]
    env = {"PATH": os.pathsep.join(path), "HOME": str(course), "OPENBLAS_NUM_THREADS": "1",
           **{k: v for k, v in os.environ.items() if k.startswith(("PIP_", "PYENV"))}}
    proc = subprocess.run(setup, shell=True, cwd=course, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert Path(course, open_notebooks.split()[0]).exists()

    chapter = nbformat.read(course / CHAPTER, 4)
    chapter.cells.append(nbformat.v4.new_code_cell("import cnnlib, sys\nprint(sys.prefix, cnnlib.__file__)"))
    nbformat.write(chapter, course / "probe.ipynb")
    proc = subprocess.run([".venv/bin/python", "-c", RUN_CHAPTER, "probe.ipynb", "executed.ipynb"],
                          cwd=course, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    executed = nbformat.read(course / "executed.ipynb", 4)
    prefix, module = executed.cells[-1].outputs[0]["text"].split()
    assert Path(prefix) == course / ".venv"
    assert Path(module).is_relative_to(course / ".venv")
