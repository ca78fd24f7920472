"""The README's example is code a reader will paste: run it and check what it claims."""
import re
import subprocess
import sys
from pathlib import Path


def test_readme_training_example_runs_and_reaches_97_percent():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    example = re.search(r"## cnnlib in ten lines\s+```python\n(.*?)```", readme, re.S).group(1)
    assert len(example.strip().splitlines()) <= 12
    out = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    accuracy = float(re.search(r"test accuracy: ([\d.]+)%", out.stdout).group(1))
    assert accuracy >= 97.0, out.stdout
