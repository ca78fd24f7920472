"""Hostile cells against the trust boundary's isolation (issue 10, items 1-3).

Each constant is the source of a solution cell a hostile student would write, filled into
the released a1-convolution notebook by tests/test_grader_isolation.py.  Placeholders in
capitals (``VICTIM_DELETE`` ...) are replaced by the test with paths of its own.
"""
from __future__ import annotations

from .a1_convolution import OUTPUT_SIZE

# Item 1: write a forged worker reply to every descriptor the kernel holds (and to every
# descriptor of every process it can see), several times: one line per later student.
FORGE_REPLY = '''
import json as _j, os as _os
_forged = {"ok": True, "student": STUDENT, "assignment": "a1-convolution", "token": "",
           "grades": {"timestamp": None, "notebooks": [{
               "name": "a1-convolution", "flagged": False, "late_submission_penalty": None,
               "grades": [[_g, _p, False] for _g, _p in POINTS], "comments": []}]},
           "autograded": VICTIM_MOVE, "scratch": VICTIM_DELETE, "notes": [], "seconds": 0.1}
_line = (_j.dumps(_forged) + "\\n").encode()
_mine = []
for _fd in sorted(int(_f) for _f in _os.listdir("/proc/self/fd")):
    try:
        _target = _os.readlink(f"/proc/self/fd/{_fd}")
    except OSError:
        continue
    _mine.append(f"{_fd}:{_target}")
    if _target.startswith(("socket:", "anon_inode:")):
        continue  # the kernel's own ZeroMQ plumbing
    try:
        _os.write(_fd, _line * 4)
    except OSError:
        pass
for _pid in [_p for _p in _os.listdir("/proc") if _p.isdigit() and int(_p) != _os.getpid()]:
    try:
        _fds = _os.listdir(f"/proc/{_pid}/fd")
    except OSError:
        continue
    for _fd in _fds:
        try:
            with open(f"/proc/{_pid}/fd/{_fd}", "ab", buffering=0) as _fh:
                _fh.write(_line * 4)
        except OSError:
            pass
print("descriptors:", _mine)
''' + OUTPUT_SIZE

# Item 2: look for the course wherever it may be copied, the checkout and its history, home
# folders, other processes' files.  If anything outside the allow-list is visible, the
# answer is sabotaged (the score shows it) and the cell prints what it saw.
SNOOP = '''
import glob as _g, os as _os
_seen = []
for _pattern in PATTERNS:
    for _p in _g.glob(_pattern, recursive=True):
        if _os.path.isfile(_p):
            try:
                open(_p, "rb").read(1)
                _seen.append(_p)
            except OSError:
                pass
for _folder in ["/work", "/home", "/root", "/opt", "/srv", "/mnt", "/var", "/run", "/media", "/boot"]:
    try:
        _names = _os.listdir(_folder)
    except OSError:
        continue
    _names = [n for n in _names if _folder + "/" + n not in ALLOWED]
    if _names:
        _seen.append(f"{_folder}: {sorted(_names)[:5]}")
_tmp = [n for n in _os.listdir("/tmp") if "/tmp/" + n not in ALLOWED]
if _tmp:
    _seen.append(f"/tmp: {sorted(_tmp)[:5]}")
_repo = REPO
if _os.path.isdir(_repo):
    _extra = sorted(set(_os.listdir(_repo)) - {"cnnlib", "grader", ".venv"})
    if _extra:
        _seen.append(f"{_repo}: {_extra[:5]}")
    _grader = [n for n in _os.listdir(_repo + "/grader") if not n.endswith(".py") and n != "__pycache__"]
    if _grader:
        _seen.append(f"{_repo}/grader: {sorted(_grader)[:5]}")
print("seen:", _seen)
''' + OUTPUT_SIZE + '''
if _seen:
    def output_size(n, k, stride=1, padding=0, dilation=1):
        return -1
'''

# The kernel must still have what honest work needs: NumPy and matplotlib (a figure saved in
# its folder).
HONEST_NEEDS = '''
import os as _os, numpy as _np, matplotlib.pyplot as _plt
_plt.plot(_np.arange(3)); _plt.title("a figure"); _plt.savefig("figure.png"); _plt.close("all")
print("runtime ok", _np.__version__, _os.path.getsize("figure.png") > 0)
'''

# Item 3: leave in the scratch folder what must never come back: sparse files (each within
# the kernel's file-size limit, together gigabytes), a crowd of small files, links out of the
# folder, a hard link, a named pipe, a symlink in place of the notebook (nbgrader writes the
# graded notebook there as root).
LITTER = OUTPUT_SIZE + '''
import os as _os
for _i in range(12):
    with open(f"sparse-{_i}.bin", "wb") as _fh:
        _fh.truncate(200 * 2**20)
_os.makedirs("crowd", exist_ok=True)
for _i in range(400):
    with open(f"crowd/{_i}.txt", "w") as _fh:
        _fh.write("x")
for _name, _target in LINKS:
    try:
        _os.symlink(_target, _name)
    except OSError as _e:
        print("symlink", _name, _e)
with open("notes.txt", "w") as _fh:
    _fh.write("my notes")
with open("mine.txt", "w") as _fh:
    _fh.write("linked")
_os.link("mine.txt", "hardlink.txt")
_os.mkfifo("pipe")
print("littered")
'''

# the last cell that runs: the graded notebook's own name becomes a symlink out of the folder
NOTEBOOK_LINK = '''
import os as _os
_os.remove("a1-convolution.ipynb")
_os.symlink(OUTSIDE, "a1-convolution.ipynb")
print("the notebook is now a link")
'''
