"""Files that cross the sandbox's boundary, in either direction.

A submitted folder is checked before anything is copied from it (``check_tree``), and what a
kernel leaves in its scratch folder is swept once the kernel is dead (``sanitize``) and copied
back only file by file (``copy_checked``).  The rule is the same both ways: only folders and
regular files with a single link, within a budget, and never a link followed; every entry is
opened relative to its parent's descriptor (``_walk``), so a folder replaced by a link while we
look is not entered.
"""
from __future__ import annotations

import os
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Budget:
    files: int
    bytes: int

    def describe(self) -> str:
        return f"at most {self.files} files and {self.bytes / 2**20:g} MiB"


# a submitted folder (before anything is copied from it) and what comes back from a scratch
# folder (the graded notebook, the figures it saved); sizes are apparent sizes (st_size), so
# a sparse file counts for what it would take once copied
SUBMISSION_BUDGET = Budget(files=100, bytes=50 * 2**20)
SCRATCH_BUDGET = Budget(files=100, bytes=50 * 2**20)
WALK_LIMIT = 100_000  # entries looked at in one folder tree, at most

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _problem(st: os.stat_result) -> str | None:
    """What makes an entry unfit to cross the boundary, in a few words (None: a folder, or a
    regular file with one link)."""
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        return None
    if stat.S_ISREG(mode):
        return None if st.st_nlink == 1 else "a hard link"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _sentence(rel: str, problem: str) -> str:
    if problem == "a symbolic link":
        return f"{rel} is a symbolic link"
    if problem == "a hard link":
        return f"{rel} has other hard links"
    return f"{rel} is not a regular file ({problem})"


def _open_dir(root_fd: int, parts: tuple[str, ...]) -> int:
    fd = os.open(".", _DIR_FLAGS, dir_fd=root_fd)
    for part in parts:
        try:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = child
    return fd


def _walk(root: Path, limit: int = WALK_LIMIT):
    """Every entry under ``root`` as ``(dir_fd, parts, name, lstat)``, never following a link:
    breadth first, in each folder the notebooks first, then the other files, then the
    folders.  ``dir_fd`` stays open while the entry is handled.  Stops after ``limit``
    entries, yielding ``(None, (), None, None)`` once."""
    root_fd = os.open(root, _DIR_FLAGS)
    seen = 0
    try:
        queue = deque([()])
        while queue:
            parts = queue.popleft()
            try:
                fd = _open_dir(root_fd, parts)
            except OSError:
                continue  # replaced by a link or removed meanwhile: never followed
            try:
                entries = []
                for name in os.listdir(fd):
                    try:
                        entries.append((name, os.stat(name, dir_fd=fd, follow_symlinks=False)))
                    except OSError:
                        continue
                entries.sort(key=lambda e: (stat.S_ISDIR(e[1].st_mode), not e[0].endswith(".ipynb"), e[0]))
                for name, st in entries:
                    seen += 1
                    if seen > limit:
                        yield None, (), None, None
                        return
                    yield fd, parts, name, st
                    if stat.S_ISDIR(st.st_mode):
                        queue.append(parts + (name,))
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)


# (path, reason) of everything sanitize deleted in this process: a worker reads it per student
REMOVED: list[tuple[str, str]] = []


def sanitize(root: Path) -> list[tuple[str, str]]:
    """Delete from ``root`` everything that is neither a folder nor a regular file with one
    link, without following links; return what was deleted as (path relative to ``root``,
    reason).  Run on a scratch folder once its kernel is dead, before trusted code reads or
    writes there."""
    removed = []
    try:
        for fd, parts, name, st in _walk(root):
            if fd is None:
                removed.append(("", f"stopped looking after {WALK_LIMIT} entries"))
                break
            why = _problem(st)
            if why is None:
                continue
            try:
                os.unlink(name, dir_fd=fd)
            except OSError:
                continue
            removed.append(("/".join(parts + (name,)), why))
    except OSError:
        pass  # the root itself is gone or is not a folder
    return removed


def check_tree(folder: Path, budget: Budget = SUBMISSION_BUDGET, label: str = "") -> str | None:
    """Why ``folder`` (a submission) may not be copied, or None: every entry must be a folder
    or a regular file with a single link, within ``budget``.  Names start with ``label``."""
    prefix = f"{label}/" if label else ""
    try:
        st = os.lstat(folder)
    except OSError:
        return None  # missing: the caller says so
    if not stat.S_ISDIR(st.st_mode):
        why = _problem(st)
        return _sentence(label or folder.name, why) if why else f"{label or folder.name} is not a folder"
    files = total = 0
    for fd, parts, name, st in _walk(folder):
        if fd is None:
            return f"{label or folder.name} holds more than {WALK_LIMIT} entries"
        rel = prefix + "/".join(parts + (name,))
        why = _problem(st)
        if why is not None:
            return _sentence(rel, why)
        if stat.S_ISREG(st.st_mode):
            files += 1
            total += st.st_size
            if files > budget.files:
                return f"{label or folder.name} holds more than {budget.files} files"
            if total > budget.bytes:
                return (f"{rel} makes the submission larger than the {budget.bytes / 2**20:g} MiB "
                        "allowed")
    return None


def _copy_file(fd: int, name: str, st: os.stat_result, dest: Path) -> bool:
    """Copy regular file ``name`` (in folder ``fd``) to ``dest``, if it is still the file
    that was looked at; at most its size as seen then."""
    try:
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    except OSError:
        return False
    try:
        now = os.fstat(src)
        if (not stat.S_ISREG(now.st_mode) or now.st_nlink != 1 or now.st_ino != st.st_ino
                or now.st_dev != st.st_dev):
            return False
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            left = st.st_size
            while left > 0:
                chunk = os.read(src, min(left, 1 << 20))
                if not chunk:
                    break
                os.write(out, chunk)
                left -= len(chunk)
        finally:
            os.close(out)
        return True
    finally:
        os.close(src)


def copy_checked(src: Path, dest: Path, budget: Budget = SCRATCH_BUDGET) -> list[tuple[str, str]]:
    """Copy the regular files (one link each) and folders of ``src`` into the new folder
    ``dest``, notebooks first, while they fit in ``budget``; never follow a link.  Return
    what was refused as (path relative to ``src``, reason)."""
    refused = []
    dest.mkdir(parents=True)
    files = total = 0
    for fd, parts, name, st in _walk(src):
        if fd is None:
            refused.append(("", f"stopped looking after {WALK_LIMIT} entries"))
            break
        rel = "/".join(parts + (name,))
        why = _problem(st)
        if why is not None:
            refused.append((rel, why))
            continue
        target = dest.joinpath(*parts, name)
        if stat.S_ISDIR(st.st_mode):
            if target.parent.is_dir():
                target.mkdir()
            continue
        if not target.parent.is_dir():
            continue  # its folder was not copied
        if files + 1 > budget.files or total + st.st_size > budget.bytes:
            refused.append((rel, "over the budget"))
            continue
        if _copy_file(fd, name, st, target):
            files += 1
            total += st.st_size
        else:
            refused.append((rel, "changed while it was copied"))
    return refused
