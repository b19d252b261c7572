"""The kernels a batch starts: encrypted, logging to a file, and known by process so that Ctrl-C can stop them."""
from __future__ import annotations

import os
import signal
import threading

from jupyter_client.manager import AsyncKernelManager
from traitlets import Unicode
from traitlets.config import Config


class Kernels:
    """The kernel processes running now, by task; thread-safe, so the main thread can signal them."""

    def __init__(self):
        self._pids: dict[str, int] = {}
        self._lock = threading.Lock()
        self.stopping = False

    def add(self, task: str, pid: int) -> None:
        """Register a kernel that has just started; one starting after a stop is killed at once."""
        with self._lock:
            self._pids[task] = pid
            stopping = self.stopping
        if stopping:
            _signal_group(pid, signal.SIGKILL)

    def remove(self, task: str) -> None:
        """Forget a task's kernel (it has been shut down); never signal a pid that may be reused."""
        with self._lock:
            self._pids.pop(task, None)

    def pids(self) -> dict[str, int]:
        """A copy of {task: kernel pid}."""
        with self._lock:
            return dict(self._pids)

    def signal_all(self, signum: int) -> None:
        """Send `signum` to every running kernel's process group (the kernel and, say, its DataLoader workers)."""
        for pid in self.pids().values():
            _signal_group(pid, signum)


def _signal_group(pid: int, signum: int) -> None:
    # jupyter_client starts each kernel in its own session, so its process group id is its pid
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # already gone


# Kernels of this process' batch runs; the scheduler signals them on Ctrl-C.
RUNNING = Kernels()


class BatchKernelManager(AsyncKernelManager):
    """A kernel whose output streams go to a log file and which registers itself in RUNNING while it lives."""

    task = Unicode("", config=True, help="the task's key in RUNNING")
    log_path = Unicode("", config=True, help="file that receives the kernel process' stdout and stderr")

    async def start_kernel(self, **kw) -> None:
        """Start the kernel with its console output in log_path, then register its pid."""
        # The kernel inherits the descriptor; its messages (not the notebook's outputs, which travel
        # over ZeroMQ) would otherwise interleave with the batch's progress lines.
        with open(self.log_path, "ab") as log:
            await super().start_kernel(**kw, stdout=log, stderr=log)
        RUNNING.add(self.task, self.provisioner.pid)

    async def cleanup_resources(self, restart: bool = False) -> None:
        """Forget the kernel, then clean up as usual (nbclient calls this however the run ended)."""
        RUNNING.remove(self.task)
        await super().cleanup_resources(restart=restart)


def client_options(task: str, log_path: str, cwd: str) -> dict:
    """Keyword arguments for papermill.execute_notebook that run the notebook in a BatchKernelManager kernel.

    The kernel's cwd goes through nbclient's resources rather than papermill's `cwd`, which changes
    this whole process' working directory and so cannot serve notebooks running in parallel threads.
    """
    import zmq

    manager = {"task": task, "log_path": log_path}
    if zmq.has("curve"):
        # CurveZMQ keys from jupyter_client for kernelspecs that declare support (ipykernel 7 does):
        # no plain-text TCP between this process and the kernel, so no warning from the kernel either.
        manager["transport_encryption"] = "auto"
    return {"kernel_manager_class": BatchKernelManager, "config": Config({"BatchKernelManager": manager}),
            "resources": {"metadata": {"path": cwd}}}
