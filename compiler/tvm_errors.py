"""The one line of a (long) TVM error worth showing a user.

TVM errors carry C++ back-traces and whole IR dumps (often elided as "(... N lines skipped ...)"), so
their last line is rarely the message. The first line that names an error is.
"""
from __future__ import annotations

import re

_NAMES_ERROR = re.compile(r"^\w*(Error|Exception)\b|Check failed|\berrors?:|Did you forget to bind")
_ELISION = re.compile(r"\(\.\.\. \d+ lines skipped \.\.\.\)")


def error_line(exc) -> str:
    """The first line of `exc` that names an error (with the line after it when it ends in ':'),
    else its last line that is not an IR-dump elision marker."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    for k, ln in enumerate(lines):
        if _NAMES_ERROR.search(ln) and not ln.startswith("File "):
            if ln.endswith(":") and k + 1 < len(lines):
                ln = f"{ln} {lines[k + 1]}"
            return ln
    lines = [ln for ln in lines if not _ELISION.fullmatch(ln)]
    return lines[-1] if lines else f"{type(exc).__name__}"
