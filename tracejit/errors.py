"""Exceptions and user source locations.

Input: the Python call stack. Output: the `SourceLoc` of the first frame outside tracejit (the
user's line that created a node or made a mistake), and exceptions whose message names it.
"""

from __future__ import annotations

import linecache
import os
import sys

__all__ = ["SourceLoc", "user_location", "CheckError", "ConcretizationError", "GraphFormatError",
           "TraceError", "user_error", "where"]

_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class SourceLoc:
    """A file, line and function of user code. Printed as ``file:line``."""

    __slots__ = ("file", "line", "func")

    def __init__(self, file: str, line: int, func: str = ""):
        self.file, self.line, self.func = file, line, func

    @property
    def short_file(self) -> str:
        """The path relative to the working directory when below it, else as given."""
        try:
            rel = os.path.relpath(self.file)
        except ValueError:
            return self.file
        return self.file if rel.startswith("..") else rel

    def __str__(self) -> str:
        return f"{self.short_file}:{self.line}"

    def __repr__(self) -> str:
        return f"SourceLoc({self.file!r}, {self.line})"

    def __eq__(self, other):
        return isinstance(other, SourceLoc) and (self.file, self.line) == (other.file, other.line)

    def __hash__(self):
        return hash((self.file, self.line))

    def source_text(self) -> str:
        return linecache.getline(self.file, self.line).strip()


def user_location() -> SourceLoc | None:
    """The innermost stack frame that is not tracejit's own code."""
    f = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_PKG_DIR) and not fn.startswith("<frozen"):
            return SourceLoc(fn, f.f_lineno, f.f_code.co_name)
        f = f.f_back
    return None


def where(loc: SourceLoc | None) -> str:
    """`` (at file:line: code)`` for messages, or empty when there is no location."""
    if loc is None:
        return ""
    text = loc.source_text()
    return f"\n  at {loc}" + (f": {text}" if text else "")


class TraceError(Exception):
    """Base of tracejit's own exception types."""


class ConcretizationError(TraceError):
    """Python needed a concrete value (for `if`, `bool()`, `float()`, ...) of a traced one."""


class GraphFormatError(TraceError, ValueError):
    """A serialized graph could not be loaded."""


class CheckError(AssertionError, TraceError):
    """A `tj.debug.check` failed: its condition did not hold for every element.

    The message is the check's own message (its fields filled in with the values) followed by
    the user's source ``file:line``; `loc` is that location (None while a reference raises it:
    the runner that ran the node adds it, see `located_check`)."""

    loc: SourceLoc | None = None


def located_check(e: CheckError, loc: SourceLoc | None) -> CheckError:
    """`e` with the source location of the node that raised it (`e` itself when it already has
    one: a check inside a branch or loop body is located by the innermost runner)."""
    if e.loc is not None or loc is None:
        return e
    err = CheckError(str(e) + where(loc))
    err.loc = loc
    return err


def user_error(exc_type: type[BaseException], msg: str, loc: SourceLoc | None = None):
    """Builds `exc_type` with `msg` followed by the user's source line."""
    if loc is None:
        loc = user_location()
    return exc_type(msg + where(loc))
