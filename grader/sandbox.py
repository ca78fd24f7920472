"""Run a student's kernel in a sandbox: bubblewrap, another user id, resource limits.

Why a kernel manager and not a sandboxed nbgrader process: nbgrader itself (the
gradebook, the source notebooks with their hidden tests) stays outside, and
only the process that runs student code is confined.  The manager wraps the
usual ``python -m ipykernel_launcher`` command as::

    bwrap --unshare-net --unshare-pid ... --ro-bind / / --tmpfs <hidden> ... \
        --bind <scratch> <scratch> -- setpriv --reuid <uid> ... \
        python -m grader.kernel --memory-mb ... --nproc ... -f <connection file>

- the network namespace is empty, so the kernel talks to the grader over Unix
  sockets (ZeroMQ ``ipc`` transport) in a private runtime folder;
- the file system is read-only; the course folder (solutions, gradebook,
  submissions, other students' scratch copies), the repository's ``.git`` and
  ``tests``, home folders, ``/tmp`` and ``/run`` are replaced by empty tmpfs;
  only the notebook's scratch copy and the runtime folder are writable;
- the kernel runs as an unprivileged user id (one per worker, so the process
  limit is per submission) with no capabilities;
- ``grader.kernel`` sets RLIMIT_AS / RLIMIT_NPROC / RLIMIT_FSIZE / RLIMIT_CPU
  before ipykernel starts;
- interrupts go through the control channel, and a kill takes the process
  group of bwrap: the PID namespace dies with it, fork bombs included.

Without bubblewrap the kernel still gets the limits (and the other user id when
the grader runs as root) and a loud warning is printed.
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

HERE = Path(__file__).resolve().parent  # the grader package (and default course folder)
REPO = HERE.parent
COURSE = Path(os.environ.get("GRADER_COURSE_DIR") or HERE).resolve()

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


def default_hidden_paths() -> list[str]:
    """Folders the student's kernel must not see (replaced by empty tmpfs)."""
    paths = ["/root", "/home", "/srv", "/mnt", "/media", "/var/tmp", "/run", "/var/run",
             str(HERE), str(COURSE), str(REPO / ".git"), str(REPO / "tests")]
    # siblings of the repository (other checkouts, shared folders)
    try:
        paths += [str(p) for p in REPO.parent.iterdir() if p.is_dir() and p != REPO]
    except OSError:
        pass
    return paths


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager that starts ``grader.kernel`` inside bubblewrap."""

    sandbox = Enum(["auto", "bwrap", "none"], "auto",
                   help="bwrap: require bubblewrap; none: limits only; auto: bwrap if it works"
                   ).tag(config=True)
    memory_mb = Integer(2048, help="address-space limit of the kernel (MiB)").tag(config=True)
    nproc = Integer(64, help="process/thread limit of the kernel's user id").tag(config=True)
    fsize_mb = Integer(256, help="largest file the kernel may write (MiB)").tag(config=True)
    cpu_seconds = Integer(900, help="CPU-time limit of the kernel process (s)").tag(config=True)
    uid = Integer(61000, help="user id the kernel runs as, when the grader runs as root"
                  ).tag(config=True)
    hidden_paths = List(Unicode(), help="folders hidden from the kernel (default: see "
                        "default_hidden_paths)").tag(config=True)
    extra_hidden_paths = List(Unicode(), help="more folders to hide").tag(config=True)
    runtime_root = Unicode("", help="where runtime folders are made (default: the course's "
                           ".work folder)").tag(config=True)
    switch_user = Bool(True, help="run the kernel as `uid` when the grader runs as root"
                       ).tag(config=True)
    preload = Bool(False, help="import numpy and the cnnlib reference before student code"
                   ).tag(config=True)

    _scratch: Path | None = None
    _runtime: Path | None = None

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
        if self._runtime is not None and not restart:
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
        cmd = ["bwrap", "--die-with-parent", "--new-session", "--unshare-net", "--unshare-pid",
               "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
               "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
               "--perms", "1777", "--tmpfs", "/tmp", "--perms", "1777", "--tmpfs", "/dev/shm"]
        hidden = [_real(p) for p in (self.hidden_paths or default_hidden_paths())
                  + list(self.extra_hidden_paths)]
        hidden = sorted({p for p in hidden if p.exists() and p != Path("/")}, key=lambda p: len(p.parts))
        # never hide a folder that holds the scratch copy's ancestors wholesale without re-creating them
        for path in hidden:
            if any(_inside(path, h) and path != h for h in hidden):
                continue  # already under a hidden parent
            cmd += ["--tmpfs", str(path)]
        # what must stay visible inside hidden folders: the Python installation, the engine
        # (the hidden tests' reference; a checkout under /tmp, /root or /home is otherwise
        # hidden with its parent), the grader's own modules, the scratch copy and the runtime folder
        expose_ro = [_real(sys.base_prefix), _real(sys.prefix), _real(os.path.dirname(sys.executable)),
                     REPO / "cnnlib"]
        expose_ro += [p for p in HERE.iterdir() if p.suffix == ".py" or p.name == "__pycache__"]
        expose_rw = [self._scratch, self._runtime]
        made: set[Path] = set()
        exposed: list[Path] = []

        tmpfs_roots = hidden + [Path("/tmp"), Path("/dev/shm")]

        def expose(path: Path, flag: str):
            under = [h for h in tmpfs_roots if _inside(path, h)]
            if not under:
                return False
            if any(_inside(path, e) for e in exposed):
                return True
            exposed.append(path)
            top = max(under, key=lambda h: len(h.parts))
            for i in range(len(top.parts) + 1, len(path.parts)):
                mid = Path(*path.parts[:i])
                if mid not in made:
                    cmd.extend(["--perms", "0755", "--dir", str(mid)])
                    made.add(mid)
            cmd.extend([flag, str(path), str(path)])
            return True

        for p in expose_ro:
            expose(_real(p), "--ro-bind")
        for p in expose_rw:
            if p is not None and not expose(p, "--bind"):
                cmd.extend(["--bind", str(p), str(p)])
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
        return await super()._async_launch_kernel(kernel_cmd, **kw)
