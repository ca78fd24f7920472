"""One warm kernel per autograde worker: the next student's kernel boots while
the current student is being graded.

A sandboxed kernel costs about 0.3 CPU-seconds and half a second of wall time to
start (bubblewrap, Python, ipykernel, then numpy and the cnnlib reference that
every test needs).  Started early, that time overlaps with the grading of the
previous student instead of adding to it.

Isolation is the same as for a kernel started on demand; nothing is shared or
reused between students:

- every kernel is fresh, starts in its own new, empty scratch root
  (``<worker>/k<n>/``), and serves one notebook of one student; it is killed
  when that notebook is done;
- the worker points nbgrader's ``autograded`` folder at the warm kernel's root,
  so the student's scratch copy is written inside the one folder that kernel can
  see; the kernel then changes into it (``grader.execute``);
- consecutive kernels run under different user ids (a small rotation per
  worker), so the warm kernel never shares a process limit with the one running
  student code, and a user id still holding processes of a killed kernel (a fork
  bomb being torn down) is skipped.
"""
from __future__ import annotations

import os
from pathlib import Path

from jupyter_core.utils import run_sync

from .procs import uid_has_processes
from .sandbox import SandboxKernelManager, _inside, _real


class KernelPool:
    """Hands out sandboxed kernels, keeping one fresh kernel started ahead."""

    def __init__(self, config, uids: list[int], root: Path, kernel_name: str = "python3",
                 extra_arguments: list[str] | None = None, log=None):
        self.config = config
        self.uids = list(uids)
        self.root = Path(root)
        self.kernel_name = kernel_name
        self.extra_arguments = list(extra_arguments if extra_arguments is not None
                                    else ["--HistoryManager.hist_file=:memory:"])
        self.log = log
        self._n = 0
        self._u = 0
        self._warm: SandboxKernelManager | None = None
        self._warm_root: Path | None = None
        self._ksm = None

    # ---------------------------------------------------------------- helpers
    def _say(self, text: str) -> None:
        if self.log is not None:
            self.log(text)

    def _new_root(self) -> Path:
        while True:  # a replaced worker finds the folders of the one before it
            self._n += 1
            root = self.root / f"k{self._n}"
            try:
                root.mkdir(parents=True)
            except FileExistsError:
                continue
            return _real(root)

    def _next_uid(self) -> int:
        switching = os.geteuid() == 0
        for _ in range(len(self.uids)):
            uid = self.uids[self._u % len(self.uids)]
            self._u += 1
            if not switching or not uid_has_processes(uid):
                return uid
            self._say(f"user id {uid} still has processes; skipping it")
        return self.uids[self._u % len(self.uids)]

    def _manager(self) -> SandboxKernelManager:
        kw = {}
        if self._ksm is not None:
            kw["kernel_spec_manager"] = self._ksm
        km = SandboxKernelManager(kernel_name=self.kernel_name, config=self.config, **kw)
        km.uid = self._next_uid()
        self._ksm = km.kernel_spec_manager
        return km

    # ---------------------------------------------------------------- the warm kernel
    def next_root(self) -> Path:
        """Where the next notebook's scratch copy must go: the warm kernel's root
        (a new empty folder when there is no warm kernel)."""
        if self._warm is not None and self._warm_root is not None:
            return self._warm_root
        self._warm_root = self._new_root()
        return self._warm_root

    async def launch(self) -> None:
        """Start the warm kernel, if there is none."""
        if self._warm is not None:
            return
        root = self._warm_root if self._warm_root is not None and not any(self._warm_root.iterdir()) \
            else self._new_root()
        km = self._manager()
        try:
            await km.start_kernel(cwd=str(root), extra_arguments=list(self.extra_arguments))
        except Exception as exc:
            self._say(f"could not start a warm kernel: {exc}")
            try:
                await km.kill_now()
            except Exception:
                pass
            self._warm_root = None
            return
        self._warm, self._warm_root = km, root

    launch_sync = run_sync(launch)

    async def get(self, cwd: str | None, kernel_name: str, extra_arguments: list[str],
                  fresh: bool = False) -> SandboxKernelManager | None:
        """A started kernel for the notebook in ``cwd``: the warm one when the notebook
        is in its root, else a new one.  Then the next warm kernel is started."""
        km = None
        warm, root = self._warm, self._warm_root
        usable = (not fresh and warm is not None and cwd is not None and root is not None
                  and _inside(_real(cwd), root) and kernel_name == self.kernel_name
                  and list(extra_arguments) == self.extra_arguments)
        if usable:
            self._warm = None
            self._warm_root = None
            if await warm.is_alive():
                try:
                    warm.adopt(cwd)
                    km = warm
                except Exception as exc:
                    self._say(f"could not hand the scratch copy to the warm kernel: {exc}")
            if km is None:
                await warm.kill_now()
        if km is None:
            km = self._manager()
            kw = {"cwd": cwd} if cwd else {}
            try:
                await km.start_kernel(extra_arguments=list(extra_arguments), **kw)
            except Exception:
                await km.kill_now()
                raise
        await self.launch()
        return km

    async def retire(self, root: Path) -> None:
        """The notebook meant for ``root`` is done.  If the warm kernel of that root was never
        taken (nbgrader gave up before running anything), it may not serve anyone else: the
        root holds that student's files.  It is killed and a new one is started."""
        if self._warm_root is not None and _real(root) == self._warm_root:
            warm, self._warm, self._warm_root = self._warm, None, None
            if warm is not None:
                await warm.kill_now()
            await self.launch()

    retire_sync = run_sync(retire)

    async def close(self) -> None:
        warm, self._warm = self._warm, None
        if warm is not None:
            await warm.kill_now()

    close_sync = run_sync(close)
