"""Run a student's kernel in a sandbox: bubblewrap, another user id, resource limits.

Why a kernel manager and not a sandboxed nbgrader process: nbgrader itself (the
gradebook, the source notebooks with their hidden tests) stays outside, and
only the process that runs student code is confined.  The manager wraps the
usual ``python -m ipykernel_launcher`` command as::

    bwrap --unshare-net --unshare-pid ... --ro-bind /usr /usr ... \
        --ro-bind <interpreter, venv, RUNTIME_CODE> ... --tmpfs /tmp \
        --bind <scratch> <scratch> --bind <runtime> <runtime> -- setpriv --reuid <uid> ... \
        python -m grader.kernel --memory-mb ... --nproc ... -f <connection file>

The kernel is hostile: nothing it writes, binds, patches or prints may decide a
score, reach a file outside its scratch folder, or reach another student.  Here:

- the file system is an allow-list built on an empty root: read-only, the
  system libraries (``SYSTEM_PATHS``), the few files of /etc they read
  (``SYSTEM_FILES``), the interpreter (``sys.base_prefix``), the virtual
  environment (``sys.prefix``) and the course code the kernel imports
  (``RUNTIME_CODE``: the engine and the grader's modules); an empty /tmp, /dev
  and /proc; writable, the notebook's scratch folder and the runtime folder of
  its ZeroMQ sockets.  Nothing else exists in there: no checkout, no copy of
  the course wherever it lives, no home folder, no other student;
- the network namespace is empty, so the kernel talks to the grader over Unix
  sockets (ZeroMQ ``ipc`` transport) in a private runtime folder;
- the kernel inherits no descriptor but its own standard streams: /dev/null in,
  a log file out that lies outside what it sees (``<runtime>.log``); never the
  pipes of the process that started it (a worker's reply channel);
- once the kernel is dead, its scratch folder is swept (``grader.crossing.sanitize``):
  whatever is not a folder or a regular file with a single link (symlinks, hard
  links, pipes, sockets, devices) is deleted before trusted code (nbgrader writing
  the graded notebook, as root) touches the folder, and ``crossing.copy_checked``
  brings back only regular files within a budget (``crossing.SCRATCH_BUDGET``);
- the kernel runs as an unprivileged user id (one per worker, so the process
  limit is per submission) with no capabilities;
- ``grader.kernel`` sets RLIMIT_AS / RLIMIT_NPROC / RLIMIT_FSIZE / RLIMIT_CPU
  before ipykernel starts;
- interrupts go through the control channel, and a kill takes the process
  group of bwrap: the PID namespace dies with it, fork bombs included.

Without bubblewrap the kernel still gets the limits (and the other user id when
the grader runs as root) and a loud warning is printed.

``crossing.check_tree`` applies the same rule to a submitted folder before
anything is copied from it: only folders and regular files with one link, within
``crossing.SUBMISSION_BUDGET``.
"""
from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Enum, Integer, List, Unicode

from .crossing import REMOVED, sanitize

HERE = Path(__file__).resolve().parent  # the grader package (and default course folder)
REPO = HERE.parent
COURSE = Path(os.environ.get("GRADER_COURSE_DIR") or HERE).resolve()

# ---------------------------------------------------------------- the allow-list
# Course code the kernel imports, read-only (globs relative to the checkout).  Nothing else
# of the checkout is visible: not grader/source, the gradebook, submitted/, .git or tests.
RUNTIME_CODE = ("cnnlib", "grader/*.py", "grader/__pycache__")
# System folders (a symlink, as /lib -> usr/lib on merged-/usr systems, is re-created as such)
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What the interpreter, NumPy and matplotlib read outside those: the dynamic loader's cache,
# the time zone, fontconfig's configuration and cache (matplotlib runs fc-list)
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/fonts", "/var/cache/fontconfig")


def runtime_code() -> list[Path]:
    """The files and folders of ``RUNTIME_CODE`` (never a symlink)."""
    found = []
    for pattern in RUNTIME_CODE:
        for path in sorted(REPO.glob(pattern)):
            if not path.is_symlink() and (path.is_file() or path.is_dir()):
                found.append(path)
    return found


WARNING = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! WARNING: bubblewrap (bwrap) is not available: student code runs WITHOUT a     !!
!! sandbox. It can read the solutions and the gradebook and use the network.     !!
!! Time and memory limits still apply. Install it: apt-get install bubblewrap    !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


@functools.lru_cache(maxsize=None)
def bwrap_works() -> bool:
    exe = shutil.which("bwrap")
    if not exe:
        return False
    try:
        probe = subprocess.run(
            [exe, "--unshare-net", "--unshare-pid", "--die-with-parent", "--ro-bind", "/", "/",
             "--dev", "/dev", "--proc", "/proc", "--", "true"],
            capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


_warned = False

# longest runtime root for which "<root>/rt-XXXXXXXX/k-N" fits a Unix socket path (108 bytes)
SOCKET_ROOT_MAX = 80


def _short_runtime_root() -> Path:
    """A runtime root with a short path, for course folders deep in the file system:
    ``$TMPDIR/grader-rt-<uid>``, ours and not writable by others (else a new one)."""
    root = Path(tempfile.gettempdir()) / f"grader-rt-{os.geteuid()}"
    try:
        root.mkdir(mode=0o711, exist_ok=True)
        st = root.lstat()
        if st.st_uid == os.geteuid() and not st.st_mode & 0o022 and not root.is_symlink():
            return root
    except OSError:
        pass
    root = Path(tempfile.mkdtemp(prefix="grader-rt-"))
    os.chmod(root, 0o711)
    return root


def warn_unsandboxed() -> None:
    global _warned
    if not _warned:
        print(WARNING, file=sys.stderr, flush=True)
        warnings.warn("student code runs without a sandbox (bubblewrap missing)", RuntimeWarning,
                      stacklevel=2)
        _warned = True


def _real(path) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
        return True
    except ValueError:
        return False


def _open_to_others(path: Path) -> bool:
    """Every folder from / to path can be traversed by any user."""
    for folder in [path, *path.parents]:
        try:
            if not folder.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def _echo_tail(log: Path, size: int = 2000) -> None:
    """Pass the end of a dead kernel's output on to our stderr (a worker's log), then
    delete it."""
    try:
        fd = os.open(log, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        end = os.fstat(fd).st_size
        text = os.pread(fd, size, max(0, end - size)).decode("utf-8", "replace").strip()
    finally:
        os.close(fd)
        try:
            os.unlink(log)
        except OSError:
            pass
    if text:
        print(f"[kernel output, last {size} bytes] {text}", file=sys.stderr, flush=True)



class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager that starts ``grader.kernel`` inside bubblewrap."""

    sandbox = Enum(["auto", "bwrap", "none"], "auto",
                   help="bwrap: require bubblewrap; none: limits only; auto: bwrap if it works"
                   ).tag(config=True)
    memory_mb = Integer(2048, help="address-space limit of the kernel (MiB)").tag(config=True)
    nproc = Integer(64, help="process/thread limit of the kernel's user id").tag(config=True)
    fsize_mb = Integer(256, help="largest file the kernel may write (MiB)").tag(config=True)
    tmpfs_mb = Integer(256, help="size of each of the kernel's /tmp and /dev/shm, which live in "
                       "the host's memory, outside the kernel's own limit (MiB)").tag(config=True)
    cpu_seconds = Integer(900, help="CPU-time limit of the kernel process (s)").tag(config=True)
    uid = Integer(61000, help="user id the kernel runs as, when the grader runs as root"
                  ).tag(config=True)
    hidden_paths = List(Unicode(), help="folders hidden from the kernel although inside what "
                        "it may see (the allow-list already hides everything else)").tag(config=True)
    extra_hidden_paths = List(Unicode(), help="more folders to hide").tag(config=True)
    runtime_root = Unicode("", help="where runtime folders are made (default: the course's "
                           ".work folder)").tag(config=True)
    switch_user = Bool(True, help="run the kernel as `uid` when the grader runs as root"
                       ).tag(config=True)
    preload = Bool(False, help="import numpy and the cnnlib reference before student code"
                   ).tag(config=True)

    _scratch: Path | None = None
    _runtime: Path | None = None
    removed: list[tuple[str, str]] | None = None  # what sanitize deleted from the scratch folder

    def _log_path(self) -> Path | None:
        """The kernel's stdout and stderr: next to the runtime folder, outside the sandbox."""
        return None if self._runtime is None else self._runtime.with_name(self._runtime.name + ".log")

    # ---------------------------------------------------------------- lifecycle
    def _use_bwrap(self) -> bool:
        if self.sandbox == "none":
            return False
        ok = bwrap_works()
        if not ok:
            if self.sandbox == "bwrap":
                raise RuntimeError("bubblewrap is required (sandbox='bwrap') but does not work here")
            warn_unsandboxed()
        return ok

    def _switch_user(self) -> bool:
        if not (self.switch_user and os.geteuid() == 0 and shutil.which("setpriv")):
            return False
        if self._scratch is not None and not self._use_bwrap_quiet():
            # without bubblewrap the other user must be able to reach the folders itself
            for folder in (self._scratch, self._runtime):
                if folder is not None and not _open_to_others(folder.parent):
                    return False
        return True

    def _use_bwrap_quiet(self) -> bool:
        return self.sandbox != "none" and bwrap_works()

    async def start_kernel(self, **kw):
        cwd = kw.get("cwd") or os.getcwd()
        self._scratch = _real(cwd)
        root = Path(self.runtime_root) if self.runtime_root else COURSE / ".work"
        if len(str(_real(root))) > SOCKET_ROOT_MAX:
            # ZeroMQ's ipc sockets are Unix sockets: their path must stay under 108 bytes
            root = _short_runtime_root()
        root.mkdir(parents=True, exist_ok=True)
        self._runtime = Path(tempfile.mkdtemp(prefix="rt-", dir=root))
        os.chmod(self._runtime, 0o700)
        self.transport = "ipc"
        self.ip = str(self._runtime / "k")
        self.connection_file = str(self._runtime / "connection.json")
        if self._switch_user():
            for base, dirs, files in os.walk(self._scratch):
                for name in [base, *[os.path.join(base, d) for d in dirs],
                             *[os.path.join(base, f) for f in files]]:
                    os.lchown(name, self.uid, self.uid)
            os.chown(self._runtime, self.uid, self.uid)
        await super().start_kernel(**kw)

    def write_connection_file(self, **kwargs):
        super().write_connection_file(**kwargs)
        if self._switch_user():
            os.chown(self.connection_file, self.uid, self.uid)

    def adopt(self, path) -> None:
        """Hand ``path`` (created inside the scratch root after the kernel started) and
        everything under it to the kernel's user id, like the scratch copy at start."""
        if self._scratch is None or not self._switch_user():
            return
        path = _real(path)
        if not _inside(path, self._scratch):
            raise ValueError(f"{path} is not inside the kernel's scratch folder {self._scratch}")
        for folder in path.parents:
            if not _inside(folder, self._scratch) or folder == self._scratch:
                break
            os.lchown(folder, self.uid, self.uid)
        for base, dirs, files in os.walk(path):
            for name in [base, *[os.path.join(base, d) for d in dirs],
                         *[os.path.join(base, f) for f in files]]:
                os.lchown(name, self.uid, self.uid)

    async def kill_now(self) -> None:
        """SIGKILL the kernel's process group and release everything, without the
        0.1 s polling loops of ``shutdown_kernel(now=True)``.  Killing bwrap ends its
        PID namespace, and with it every process the student started."""
        process = getattr(self.provisioner, "process", None)
        if process is not None:
            try:
                await self.provisioner.kill()
            except Exception:  # already gone
                pass
            deadline = time.monotonic() + 5
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            if process.poll() is not None:
                await self.provisioner.wait()
            if self._switch_user() and self._use_bwrap_quiet():
                # the PID namespace dies with bwrap; let its last processes go before the sweep
                from .procs import uid_has_processes

                while uid_has_processes(self.uid) and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
        if self._control_socket is not None:
            self._control_socket.close(linger=0)
            self._control_socket = None
        await self.cleanup_resources()

    async def interrupt_kernel(self) -> None:
        # bwrap does not pass SIGINT on; ask ipykernel over the control channel.
        if self.has_kernel:
            msg = self.session.msg("interrupt_request", content={})
            self._connect_control_socket()
            self.session.send(self._control_socket, msg)

    async def cleanup_resources(self, restart: bool = False) -> None:
        await super().cleanup_resources(restart=restart)
        if restart:
            return
        if self._scratch is not None:
            # the kernel is gone: what it left that is not a folder or a plain file goes, before
            # nbgrader (as root) writes the graded notebook there
            removed = sanitize(self._scratch)
            if removed:
                self.removed = (self.removed or []) + removed
                REMOVED.extend((str(self._scratch / rel), why) for rel, why in removed)
        log = self._log_path()
        if log is not None:
            _echo_tail(log)
        if self._runtime is not None:
            shutil.rmtree(self._runtime, ignore_errors=True)
            self._runtime = None

    # ---------------------------------------------------------------- the command
    def format_kernel_cmd(self, extra_arguments=None):
        inner = [sys.executable, "-m", "grader.kernel",
                 f"--memory-mb={self.memory_mb}", f"--nproc={self.nproc}",
                 f"--fsize-mb={self.fsize_mb}", f"--cpu-seconds={self.cpu_seconds}"]
        if self.preload:
            inner.append("--preload")
        inner += ["--", "-f", self.connection_file, *(extra_arguments or [])]
        if self._switch_user():
            inner = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                     "--inh-caps=-all", "--bounding-set=-all", *inner]
        if not self._use_bwrap():
            return inner
        return self.bwrap_command() + ["--", *inner]

    def sandbox_env(self) -> dict[str, str]:
        rt = str(self._runtime)
        env = {
            "PATH": os.path.dirname(sys.executable) + ":/usr/local/bin:/usr/bin:/bin",
            "HOME": rt, "IPYTHONDIR": f"{rt}/ipython", "MPLCONFIGDIR": f"{rt}/mpl",
            "XDG_CACHE_HOME": f"{rt}/cache", "XDG_CONFIG_HOME": f"{rt}/config",
            "JUPYTER_RUNTIME_DIR": f"{rt}/jupyter", "JUPYTER_CONFIG_DIR": f"{rt}/jupyter-config",
            "TMPDIR": "/tmp", "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
            "JPY_PARENT_PID": "1",  # the PID namespace makes the real parent invisible
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1", "NBGRADER_EXECUTION": os.environ.get("NBGRADER_EXECUTION", ""),
        }
        if sys.prefix != sys.base_prefix:
            env["VIRTUAL_ENV"] = sys.prefix
        return env

    def bwrap_command(self) -> list[str]:
        """bubblewrap on an empty root: the allow-list (module docstring), nothing else."""
        cmd = ["bwrap", "--die-with-parent", "--new-session", "--unshare-net", "--unshare-pid",
               "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        present = {Path("/"), Path("/tmp"), Path("/dev"), Path("/dev/shm"), Path("/proc")}
        for name in SYSTEM_PATHS:
            path = Path(name)
            if path.is_symlink():
                cmd += ["--symlink", os.readlink(path), name]
            elif path.is_dir():
                cmd += ["--ro-bind", name, name]
            else:
                continue
            present.add(path)
        size = str(self.tmpfs_mb * 2**20)
        cmd += ["--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--size", size, "--tmpfs", "/tmp",
                "--perms", "1777", "--size", size, "--tmpfs", "/dev/shm"]

        # (source, where the kernel sees it, flag); a path given with symlinks in it is shown
        # at both places, since the interpreter and the editable install use the names given
        binds: list[tuple[Path, Path, str]] = []

        def allow(path, flag: str = "--ro-bind") -> None:
            given = Path(os.path.abspath(path))
            real = _real(path)
            if not os.path.exists(real):
                return
            for where in dict.fromkeys([real, given]):
                binds.append((real, where, flag))

        for name in SYSTEM_FILES:
            allow(name)
        for prefix in dict.fromkeys([sys.base_prefix, sys.prefix, os.path.dirname(sys.executable)]):
            if _real(prefix) != Path("/"):
                allow(prefix)
        for path in runtime_code():
            allow(path)
        for path in (self._scratch, self._runtime):
            if path is not None:
                allow(path, "--bind")
        binds.sort(key=lambda b: (len(b[1].parts), b[2] == "--bind"))
        shown: list[tuple[Path, str]] = [(p, "--ro-bind") for p in present - {Path("/"), Path("/tmp"),
                                                                              Path("/dev/shm")}]
        for src, where, flag in binds:
            inside = [p for p, f in shown if _inside(where, p)]
            if inside and (flag == "--ro-bind" or any(f == "--bind" and _inside(where, p)
                                                      for p, f in shown)):
                continue  # already visible, with the same rights
            if not inside:
                for parent in reversed(where.parents):
                    if parent not in present:
                        cmd += ["--perms", "0755", "--dir", str(parent)]
                        present.add(parent)
            cmd += [flag, str(src), str(where)]
            present.add(where)
            shown.append((where, flag))
        # folders an instructor wants hidden although they lie inside what is shown
        for hidden in [*self.hidden_paths, *self.extra_hidden_paths]:
            h = _real(hidden)
            if h.exists() and any(_inside(h, p) and h != p for p, _ in shown) \
                    and not any(_inside(p, h) for p, _ in shown):
                cmd += ["--tmpfs", str(h)]
        cmd += ["--chdir", str(self._scratch), "--clearenv"]
        for key, value in self.sandbox_env().items():
            cmd += ["--setenv", key, value]
        return cmd

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        # Outside bubblewrap the environment is cleaned here instead.
        if kernel_cmd and kernel_cmd[0] != "bwrap":
            env = dict(self.sandbox_env())
            env["JPY_PARENT_PID"] = str(os.getpid())
            kw["env"] = env
        # The kernel's standard streams are its own: /dev/null in, a log file out (outside
        # what it sees).  It inherits nothing else: never our stdout, which in a worker was
        # once the reply channel to the parent.
        log = self._log_path()
        out = subprocess.DEVNULL
        if log is not None:
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        kw.update(stdin=subprocess.DEVNULL, stdout=out, stderr=out, close_fds=True, pass_fds=())
        try:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        finally:
            if out is not subprocess.DEVNULL:
                os.close(out)
