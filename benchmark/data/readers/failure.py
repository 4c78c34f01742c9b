"""How a reader words the exception a parser raised on a broken file: on one line.

Parsers of untrusted bytes (pydicom, nibabel, gzip) raise many types, often with multi-line
messages; a user-facing error is one line that names the file, so they are folded here.
"""
from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """``Type: message`` with whitespace (newlines included) folded to single spaces."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
