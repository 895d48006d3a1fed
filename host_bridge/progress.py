"""Progress on the terminal while a batch renders: one line for the file being rendered
(percentage of its audio, speed, ETA) and one for the batch (files done, ETA).

Drawn with tqdm on stderr, only when stderr is a terminal and ``--quiet`` is not given, so logs
and pipes get no control characters. The renderer itself only calls the plain callbacks
(``render_file(..., progress=callable(done_samples, total_samples))``); this module turns them
into bars.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

__all__ = ["BatchProgress", "progress_enabled"]


def progress_enabled(quiet: bool, stream: TextIO | None = None) -> bool:
    """True when bars should be drawn: not quiet and the stream (default stderr) is a terminal."""
    stream = stream if stream is not None else sys.stderr
    try:
        return not quiet and bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class BatchProgress:
    """Two tqdm bars: the batch (files) and the current file (percentage of its samples, ETA).

    ``files``: number of files in the batch; ``stream``: where to draw (stderr). Use
    :meth:`file_progress` as ``render_file``'s ``progress`` callback (it needs
    :meth:`start_file` first) and :meth:`file_done` as ``render_batch``'s per-file callback.
    ``enabled=False`` makes every method a no-op (``--quiet``, not a terminal).
    """

    def __init__(self, files: int, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self._file: Any = None
        self._batch: Any = None
        self._stream = stream if stream is not None else sys.stderr
        if enabled:
            from tqdm import tqdm

            self._tqdm = tqdm
            self._batch = tqdm(total=files, desc="batch", unit="file", position=0, leave=True,
                               file=self._stream, dynamic_ncols=True,
                               bar_format="{desc}: {n_fmt}/{total_fmt} files |{bar}| {percentage:3.0f}% "
                                          "[{elapsed}<{remaining}]{postfix}")

    def start_file(self, path: str | Path) -> None:
        """A file starts rendering."""
        if not self.enabled:
            return
        self.close_file()
        self._file = self._tqdm(total=1, desc=Path(path).name[-40:], position=1, leave=False,
                                file=self._stream, dynamic_ncols=True,
                                bar_format="{desc}: {percentage:3.0f}% |{bar}| [{elapsed}<{remaining}]")

    def file_progress(self, done: int, total: int) -> None:
        """``render_file`` progress callback: ``done`` of ``total`` samples per channel."""
        if self._file is None:
            return
        self._file.total = max(1, int(total))
        self._file.n = min(int(done), self._file.total)
        self._file.refresh()

    def close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def file_done(self, i: int, n: int, result: Any) -> None:
        """``render_batch`` callback: file ``i`` of ``n`` finished with ``result`` (a RenderResult)."""
        if not self.enabled:
            return
        self.close_file()
        self._batch.n = i
        self._batch.set_postfix_str(f"{result.status}: {Path(result.input).name}", refresh=False)
        self._batch.refresh()

    def close(self) -> None:
        """Remove the file bar and finish the batch bar."""
        if self.enabled:
            self.close_file()
            self._batch.close()
