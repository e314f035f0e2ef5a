"""Give freed memory back to the system: :func:`release_free_memory`.

Reading files and the analyses free hundreds of MB of temporaries that the allocators keep for
reuse; without handing them back they count in the resident memory of whatever follows (and of
every forked worker, :mod:`ser_diag.parallel`).
"""

from __future__ import annotations

import sys

__all__ = ["release_free_memory"]

_trim = None   # glibc's malloc_trim once looked up; False where there is none


def release_free_memory() -> None:
    """Hand freed memory back: Arrow's pool (the text columns pandas keeps in pyarrow) when
    pyarrow is loaded, then the C heap (glibc ``malloc_trim``; nothing elsewhere)."""
    global _trim
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        pyarrow.default_memory_pool().release_unused()
    if _trim is None:
        try:
            import ctypes

            _trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # pragma: no cover - not glibc
            _trim = False
    if _trim:
        _trim(0)
