"""Memory limits for reading untrusted checkpoints: budgets derived from the file's own size,
charged before anything is allocated, and the zip-bomb check for torch.save archives."""

from __future__ import annotations

import pickle
import zipfile
from typing import Any

MAX_COMPRESSION_RATIO = 20        # torch.save stores entries uncompressed; deflated weights shrink < 2x
SMALL_TENSOR_BYTES = 1 << 20      # an expanded (stride-0) tensor up to this size is allowed
MAX_NESTING = 200                 # containers deeper than this are not a checkpoint
NODE_COST = 64                   # bytes charged per object visited (pointer + header, rounded up)


class LimitExceeded(pickle.UnpicklingError):
    """The file asks for more memory than its own size justifies; refused before allocating it."""


def format_mb(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB" if n >= 10 << 20 else f"{n / (1 << 20):.1f} MB"


class Budget:
    """A byte budget; ``charge`` raises :class:`LimitExceeded` naming ``name`` and the limit."""

    def __init__(self, limit: int, name: str) -> None:
        self.limit, self.name, self.used = int(limit), name, 0

    def charge(self, n: int, what: str) -> None:
        self.used += int(n)
        if self.used > self.limit:
            raise LimitExceeded(f"{what} exceeds the {self.name} limit of {format_mb(self.limit)}; the file is built to "
                                f"exhaust memory (or is not a checkpoint), nothing more was allocated")


class Limits:
    """Per-file budgets, derived from the pickle's size and the stored tensor data.

    objects: containers/strings made while unpickling plus every node visited by a walk over the
    tree: 32 MB + 256 bytes per pickle byte. tensors: bytes of materialised tensors and arrays:
    64 MB + 4x (stored tensor bytes + pickle bytes), so aliases of one storage are allowed, a
    fan-out of references is not.
    """

    def __init__(self, pickle_bytes: int) -> None:
        self.pickle_bytes = int(pickle_bytes)
        self.storage_bytes = 0
        self.objects = Budget((32 << 20) + 256 * self.pickle_bytes, "object memory")
        self._tensors: Budget | None = None

    @property
    def tensors(self) -> Budget:
        if self._tensors is None:
            self._tensors = Budget((64 << 20) + 4 * (self.storage_bytes + self.pickle_bytes), "tensor memory")
        return self._tensors

    def node(self, o: Any, depth: int) -> None:
        """Charge one visited object; refuse nesting deeper than :data:`MAX_NESTING`."""
        if depth > MAX_NESTING:
            raise LimitExceeded(f"containers nested deeper than the limit of {MAX_NESTING} levels; not a "
                                f"checkpoint")
        extra = len(o) if isinstance(o, (str, bytes, bytearray)) else 0
        self.objects.charge(NODE_COST + extra, "the object tree (shared references expanded)")


def check_entry(info: zipfile.ZipInfo) -> None:
    """Refuse a zip entry that inflates more than :data:`MAX_COMPRESSION_RATIO` times (a zip bomb)."""
    if info.file_size > (1 << 20) and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
        raise LimitExceeded(f"zip entry '{info.filename}' inflates from {format_mb(info.compress_size)} to "
                            f"{format_mb(info.file_size)} ({info.file_size // max(info.compress_size, 1)}:1), over the "
                            f"compression-ratio limit of {MAX_COMPRESSION_RATIO}:1 (torch.save stores tensors "
                            f"uncompressed); refused before inflating it")
