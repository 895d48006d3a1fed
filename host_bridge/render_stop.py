"""Stopping a render cleanly: SIGTERM is handled like Ctrl-C.

A render writes each output to a hidden temp file (:mod:`svc_dsp.fileops`) that is removed when
the writer sees an exception. Python turns SIGINT into ``KeyboardInterrupt`` but SIGTERM (what
``kill``, systemd and job schedulers send) ends the process at once, leaving the temp file. While
:func:`stop_on_sigterm` is active, SIGTERM raises :class:`RenderInterrupted` instead, so the same
clean-up runs; worker processes get the same handler.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["RenderInterrupted", "stop_on_sigterm", "install_worker_handler"]


class RenderInterrupted(KeyboardInterrupt):
    """A render stopped by a signal; ``signum`` is the signal's number (exit status 128 + signum)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


def _raise(signum: int, frame: Any) -> None:
    raise RenderInterrupted(signum)


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While active (main thread only; elsewhere a no-op), SIGTERM raises RenderInterrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def install_worker_handler() -> None:
    """For a render worker process: SIGTERM raises RenderInterrupted (its partial file is removed)."""
    signal.signal(signal.SIGTERM, _raise)
