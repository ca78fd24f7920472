"""nbgrader's Execute step with a per-notebook time budget and kernel recovery.

nbgrader (through nbclient) only has a per-cell timeout: a cell that ignores
SIGINT leaves the kernel busy, every later cell times out, and the submission
is dropped.  This preprocessor runs the cells one by one and, from outside the
kernel:

- gives each cell ``min(timeout, what is left of notebook_budget)`` seconds;
- on a timeout interrupts the kernel, then checks it answers within
  ``interrupt_grace`` seconds; if not (or if the kernel died, or a cell left
  processes running) it kills the kernel's whole process group, starts a new
  kernel, silently re-runs the cells that had completed, and goes on with the
  next cell;
- when the budget is spent, the remaining cells get a "not run" error, so
  their tests score 0 and the rest of the notebook is still graded.

Every cell stopped this way gets an error output whose name says why
(``CellTimeoutError``, ``KernelDied``, ``KernelKilled``, ``NotRun``).

Test cells are not sent to the kernel: they run on the trusted side (grader.scoring), and
the instructor's locked cells run there too, after their run in the kernel.  Output is kept
up to ``max_output_bytes`` per cell, and no message over ``max_message_bytes`` is read.
"""
from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path
from queue import Empty
from time import monotonic

import zmq
from jupyter_core.utils import ensure_async, run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Float, Integer, Type, Unicode, default

from . import procs, scoring
from .sandbox import SandboxKernelManager

STOPPED = ("CellTimeoutError", "KernelDied", "KernelKilled", "NotRun")


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(scoring.error(ename, evalue))


# Where kernels come from.  None: each notebook starts its own.  A worker of
# ``python -m grader autograde`` installs a grader.pool.KernelPool here, which
# hands out a kernel that was started (fresh, for this student only) while the
# previous student was being graded.
KERNELS = None


class SandboxedExecute(scoring.KernelCalls, Execute):
    """Execute a submission in the sandboxed kernel, within a time budget."""

    notebook_budget = Integer(300, help="seconds for the whole notebook").tag(config=True)
    interrupt_grace = Float(3.0, help="seconds a kernel has to answer after an interrupt"
                            ).tag(config=True)
    max_restarts = Integer(3, help="kernel restarts per notebook").tag(config=True)
    trusted_notebook = Unicode("", help="the notebook whose test and read-only cells the trusted "
                               "side runs (a self-check: the released notebook); empty: the "
                               "assignment's source notebook, \"-\": the notebook being run").tag(config=True)
    max_output_bytes = Integer(2**20, help="output kept per cell; the rest is dropped with a note "
                               "(at most 16 MiB: the kernel sends no more, grader/kernel.py)").tag(config=True)
    max_message_bytes = Integer(64 * 2**20, help="largest message read from the kernel"
                                ).tag(config=True)

    kernel_manager_class = Type(SandboxKernelManager, config=True)

    @default("shutdown_kernel")
    def _shutdown_default(self):
        return "immediate"

    @default("iopub_timeout")
    def _iopub_default(self):
        return 3

    _cell_limit: float | None = None
    _timed_out = False
    _kernel_info: dict | None = None

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(*args, **kwargs)

    # ---------------------------------------------------------------- entry point
    def preprocess(self, nb, resources=None, km=None):
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._trusted = (scoring.source_cells(resources) if not self.trusted_notebook else
                         None if self.trusted_notebook == "-" else scoring.cells_of(self.trusted_notebook))
        run_sync(self._run_notebook)()
        return self.nb, self.resources

    # ---------------------------------------------------------------- roles of the cells
    def _role(self, cell) -> str:
        """'test' (runs on the trusted side only), 'setup' (an instructor's locked cell: runs
        in the kernel and on the trusted side) or 'student' (runs in the kernel only)."""
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            return "student"
        if meta.get("grade"):
            return "test"
        return "setup" if meta.get("locked") else "student"

    def _trusted_code(self, cell) -> str | None:
        """The code the trusted side runs for this cell: the assignment's own, never the
        submission's (None: the submission's cell is not one of the assignment's)."""
        if self._trusted is None:
            return cell.source
        return self._trusted.get(cell.metadata.get("nbgrader", {}).get("grade_id"))

    # ---------------------------------------------------------------- the trusted side
    async def _run_trusted(self, cell, role: str, index: int) -> str:
        """Run ``cell`` on the trusted side; returns why the kernel broke ("" if it did not)."""
        code = self._trusted_code(cell)
        label = cell.metadata.get("nbgrader", {}).get("grade_id", f"cell {index}")
        if code is None:
            if role == "test":
                cell.outputs = [_error("NotATest", "this cell is not one of the assignment's "
                                       "test cells; it was not run")]
            return ""
        self._deadline = monotonic() + (self._cell_limit or self.timeout or 30)
        run = self._tests.test if role == "test" else self._tests.setup
        try:
            outputs = await self._loop.run_in_executor(None, run, code, label)
        except scoring.KernelTrouble as trouble:
            cell.outputs = [_error(trouble.ename, str(trouble))]
            return "" if trouble.ename == "CellTimeoutError" else trouble.ename
        if role == "test":
            cell.outputs = [NotebookNode(o) for o in outputs]
        return ""

    def output(self, outs, msg, display_id, cell_index):
        """nbclient's, keeping at most ``max_output_bytes`` of output per cell."""
        size = len(str(msg.get("content", "")))
        used = self._output_bytes.get(cell_index, 0)
        self._output_bytes[cell_index] = used + size
        if used + size > self.max_output_bytes:
            if used <= self.max_output_bytes:
                outs.append(NotebookNode(output_type="stream", name="stdout", text=(
                    f"\n[output truncated: this cell printed more than "
                    f"{self.max_output_bytes // 1024} KB; the rest was dropped]\n")))
            return None
        return super().output(outs, msg, display_id, cell_index)

    def _get_timeout(self, cell):
        if self._cell_limit is not None:
            return max(1, math.ceil(self._cell_limit))
        return super()._get_timeout(cell)

    async def _async_handle_timeout(self, timeout, cell=None):
        self._timed_out = True
        self.log.warning("cell timed out after %s s; interrupting", timeout)
        try:
            await self.km.interrupt_kernel()
        except Exception:  # the kill below handles a kernel that cannot be reached
            pass
        return {"content": {"status": "error", "ename": "CellTimeoutError",
                            "evalue": f"this cell ran for more than {timeout} s and was stopped",
                            "traceback": [f"CellTimeoutError: this cell ran for more than {timeout} s "
                                          f"and was stopped"]}}

    # ---------------------------------------------------------------- the loop
    async def _start(self, restart: bool = False) -> None:
        try:
            await self._start_once(fresh=restart)
        except Exception as exc:
            if KERNELS is None:
                raise
            # a kernel from the pool that died on the way (say, a user id at its process
            # limit): one more try with a new kernel
            self.log.warning("kernel start failed (%s); trying a new kernel", exc)
            await self._kill()
            await self._start_once(fresh=True)
        self._baseline = self._process_count()

    async def _start_once(self, fresh: bool) -> None:
        cwd = self.resources.get("metadata", {}).get("path") or None
        self.km = None
        if KERNELS is not None:
            self.km = await KERNELS.get(cwd, kernel_name=self._kernel_name(),
                                        extra_arguments=self._kernel_arguments(), fresh=fresh)
        if self.km is None:
            self.km = self.create_kernel_manager()
            await self.async_start_new_kernel()
        await self.async_start_new_kernel_client()
        scratch = getattr(self.km, "_scratch", None)
        if cwd and scratch is not None and Path(os.path.realpath(cwd)) != Path(scratch):
            await self._chdir(cwd)  # a warm kernel, started in its empty scratch root

    def _kernel_name(self) -> str:
        return self.kernel_name or self.nb.metadata.get("kernelspec", {}).get("name") or "python3"

    def _kernel_arguments(self) -> list[str]:
        args = list(self.extra_arguments)
        if self.ipython_hist_file and not any(a.startswith("--HistoryManager.hist_file") for a in args):
            args.append(f"--HistoryManager.hist_file={self.ipython_hist_file}")
        return args

    async def async_start_new_kernel_client(self):
        """nbclient's, with a readiness check that does not sleep.

        jupyter_client's ``wait_for_ready`` ends by draining IOPub until it has been
        quiet for 0.2 s, and retries kernel_info once a second: 0.2-0.5 s of idle time
        per kernel.  The kernel is ready when it answers kernel_info on the shell
        channel and a message has come through IOPub (so our subscription is live)."""
        self.kc = self.km.client()
        # A message larger than this (a 150 MB print) is dropped by ZeroMQ before it is read
        # into memory: the grading process never holds it.
        self.kc.context.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        await ensure_async(self.kc.start_channels())
        try:
            self._kernel_info = await self._wait_ready(self.startup_timeout)
        except Exception as exc:
            self.log.error("the kernel did not become ready: %s", exc)
            await self._kill()
            raise
        self.kc.allow_stdin = False
        return self.kc

    async def _wait_ready(self, timeout: float) -> dict:
        end = monotonic() + timeout
        sent: set[str] = set()
        reply = None
        while True:
            if monotonic() > end:
                raise RuntimeError(f"the kernel did not answer within {timeout} s")
            if reply is None:
                msg_id = self.kc.kernel_info()
                sent.add(msg_id)
                resend = monotonic() + 1.0
                while reply is None and monotonic() < min(resend, end):
                    try:
                        msg = await self.kc.shell_channel.get_msg(timeout=0.05)
                    except Empty:
                        if not await ensure_async(self.km.is_alive()):
                            raise RuntimeError("the kernel died before replying to kernel_info")
                        continue
                    if msg["parent_header"].get("msg_id") in sent:
                        reply = msg
                continue
            # any IOPub message (the status of our request) proves the subscription works
            try:
                await self.kc.iopub_channel.get_msg(timeout=0.05)
                return reply
            except Empty:
                reply = None  # ask again: its status messages will come through

    async def _chdir(self, path: str) -> None:
        """Move a warm kernel (started in an empty scratch root) into the notebook's folder."""
        code = f"__import__('os').chdir({str(path)!r})"
        msg_id = self.kc.execute(code, silent=True, store_history=False, allow_stdin=False)
        end = monotonic() + max(10.0, float(self.startup_timeout or 60))
        while True:
            left = end - monotonic()
            if left <= 0:
                raise RuntimeError("the kernel did not change to the notebook's folder")
            msg = await self.kc.shell_channel.get_msg(timeout=left)
            if msg["parent_header"].get("msg_id") == msg_id:
                if msg["content"].get("status") != "ok":
                    raise RuntimeError(f"the kernel could not change to {path}: "
                                       f"{msg['content'].get('evalue', '')}")
                return

    def _process_count(self) -> int | None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is None or not os.path.isdir("/proc"):
            return None
        return len(procs.descendants(process.pid))

    def _out_of_memory(self, cell) -> bool:
        """The cell raised MemoryError and the kernel still holds nearly all the memory it
        may use (a memory bomb keeping its allocations): later cells would fail at random,
        even IPython's own error reports, so the kernel is replaced.  A MemoryError whose
        memory was given back (temporaries of a failed call) leaves the kernel as it is."""
        if not any(o.get("output_type") == "error" and o.get("ename") == "MemoryError"
                   for o in cell.get("outputs", [])):
            return False
        limit = int(getattr(self.km, "memory_mb", 0) or 0) * 2**20
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if not limit or process is None:
            return False
        used = 0
        for pid in [process.pid, *procs.descendants(process.pid)]:
            try:
                with open(f"/proc/{pid}/status") as fh:
                    for line in fh:
                        if line.startswith("VmSize:"):
                            used = max(used, int(line.split()[1]) * 1024)
                            break
            except (OSError, ValueError, IndexError):
                continue
        return limit - used < max(64 * 2**20, limit // 10)

    async def _kill(self) -> None:
        km, kc = self.km, self.kc
        self.km = self.kc = None
        if kc is not None:
            try:
                kc.stop_channels()
            except Exception:
                pass
        if km is None:
            return
        try:
            if hasattr(km, "kill_now"):
                await km.kill_now()
            else:
                await km.shutdown_kernel(now=True)
                await km.cleanup_resources()
        except Exception as exc:
            self.log.warning("kill failed: %s", exc)

    async def _responsive(self, grace: float) -> bool:
        try:
            msg_id = self.kc.kernel_info()
            end = monotonic() + grace
            while True:
                left = end - monotonic()
                if left <= 0:
                    return False
                try:
                    msg = await self.kc.shell_channel.get_msg(timeout=left)
                except Empty:
                    return False
                if msg["parent_header"].get("msg_id") == msg_id:
                    return True
        except Exception:
            return False

    async def _restart(self, done: list[int], deadline: float) -> bool:
        """Kill the kernel, start a new one, silently re-run the completed cells."""
        await self._kill()
        self._restarts += 1
        if self._restarts > self.max_restarts:
            self._stop_reason = f"the kernel had to be restarted more than {self.max_restarts} times"
            return False
        try:
            await self._start(restart=True)
        except Exception as exc:
            self._stop_reason = f"the kernel could not be restarted ({exc})"
            return False
        for index in done:
            left = deadline - monotonic()
            if left <= 0:
                self._stop_reason = "the notebook's time budget ran out while restoring the kernel"
                return False
            msg_id = self.kc.execute(self.nb.cells[index].source, silent=True,
                                     store_history=False, allow_stdin=False)
            end = monotonic() + min(self.timeout or left, left)
            while True:
                try:
                    msg = await self.kc.shell_channel.get_msg(timeout=max(0.01, end - monotonic()))
                except Empty:
                    self._stop_reason = "re-running earlier cells in a new kernel timed out"
                    await self._kill()
                    return False
                if msg["parent_header"].get("msg_id") == msg_id:
                    break
        return True

    async def _recover(self, done: list[int], deadline: float) -> None:
        """After a broken kernel: a new one with the completed cells re-run, or none at all
        (the remaining cells are then not run, and say why)."""
        if not await self._restart(done, deadline):
            await self._kill()

    async def _run_notebook(self) -> None:
        budget = self.notebook_budget
        deadline = monotonic() + budget
        done: list[int] = []
        self._restarts = 0
        self._stop_reason = ""
        self._output_bytes = {}
        self._loop = asyncio.get_running_loop()
        self._tests = scoring.TrustedTests(self._ask, scoring.bound_names((self._trusted or {}).values()))
        await self._start()
        try:
            info = self._kernel_info
            if info is not None and "language_info" in info["content"]:
                self.nb.metadata["language_info"] = info["content"]["language_info"]
            for index, cell in enumerate(self.nb.cells):
                if cell.cell_type != "code" or not cell.source.strip():
                    continue
                left = deadline - monotonic()
                if self.kc is None or left <= 0:
                    why = self._stop_reason or f"the notebook's time budget of {budget} s was used up"
                    cell.outputs = [_error("NotRun", f"this cell was not run: {why}")]
                    continue
                self._cell_limit = min(float(self.timeout or left), left)
                self._timed_out = False
                broken = ""
                role = self._role(cell)
                if role == "test":
                    if await self._run_trusted(cell, role, index):
                        await self._recover(done, deadline)
                    continue
                try:
                    await self.async_execute_cell(cell, index,
                                                  execution_count=self.code_cells_executed + 1)
                except DeadKernelError:
                    broken = "KernelDied"
                    cell.outputs.append(_error(
                        "KernelDied", "the kernel died while running this cell (out of memory, a "
                        "crash, or a resource limit); it was restarted for the next cells"))
                except (CellTimeoutError, asyncio.TimeoutError, Empty):
                    broken = "KernelKilled"
                    cell.outputs.append(_error(
                        "KernelKilled", f"this cell ran for more than {math.ceil(self._cell_limit)} s "
                        "and did not stop when interrupted; its kernel was killed and restarted "
                        "for the next cells"))
                if not broken and self._timed_out and not await self._responsive(self.interrupt_grace):
                    broken = "KernelKilled"
                    cell.outputs.append(_error(
                        "KernelKilled", "the kernel did not respond after this cell was "
                        "interrupted; it was killed and restarted for the next cells"))
                if not broken:
                    count = self._process_count()
                    if count is not None and self._baseline is not None and count > self._baseline:
                        broken = "KernelKilled"
                        cell.outputs.append(_error(
                            "KernelKilled", "this cell left processes running; the kernel was "
                            "killed and restarted for the next cells"))
                if not broken and self._out_of_memory(cell):
                    broken = "KernelKilled"
                    cell.outputs.append(_error(
                        "KernelKilled", "this cell ran out of memory and kept it (MemoryError); "
                        "the kernel was restarted for the next cells, without this cell's results"))
                if broken:
                    await self._recover(done, deadline)
                    continue
                if not self._timed_out:
                    done.append(index)
                    if role == "setup":
                        if await self._run_trusted(cell, role, index):
                            await self._recover(done, deadline)
        finally:
            self._cell_limit = None
            await self._kill()
