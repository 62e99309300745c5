"""`tj.config`: process-wide switches, readable and settable at runtime.

Input: the environment (``TRACEJIT_DEBUG``, ``TRACEJIT_DEBUG_NANS``) and assignments such as
``tj.config.debug = True``. Output: the current values, read by the pass pipeline (IR verification),
`jit.CompiledFunction` (which runner a compiled call uses) and `trace.bind` (eager NaN checks).

A switch starts as its environment variable says (read at import; ``tj.config.reset()`` reads
them again); an assignment overrides it. The pass pipeline also honours ``TRACEJIT_DEBUG`` set
later, while ``debug`` was never assigned. Every assignment bumps `version`: a compiled function
compares it once per call and, when it changed, re-chooses its runners (plain or checking), so
with the switches off the call path pays one integer comparison.

>>> import tracejit as tj
>>> tj.config.debug_nans = True
>>> tj.config.debug_nans
True
>>> tj.config.reset()
"""

from __future__ import annotations

import os

__all__ = ["config", "Config"]

_ENV = {"debug": "TRACEJIT_DEBUG", "debug_nans": "TRACEJIT_DEBUG_NANS", "lazy": "TRACEJIT_LAZY"}
_DEFAULT_ON = {"lazy"}


def _env_flag(name: str, default: bool = False) -> bool:
    v = os.environ.get(name, "").strip().lower()
    if not v:
        return default
    return v not in ("0", "false", "no", "off")


class Config:
    """The switches:

    * ``debug``: verify the IR after every pass, and run every compiled call (cpu backend) also
      on the interpreter, raising `tj.DebugCheckError` where the results disagree beyond the
      ops' tolerance (docs/reliability.md, "Differential checking"). Default: ``TRACEJIT_DEBUG``.
    * ``debug_nans``: raise ``FloatingPointError`` naming the first op (and its source line)
      that produced a NaN from NaN-free operands, in compiled calls and eager ops. Default:
      ``TRACEJIT_DEBUG_NANS``.
    * ``lazy``: eager ops build a pending graph realized on demand through the compiler, cached
      by structure (lazy.py); off, each eager op runs at once on numpy. Default: on
      (``TRACEJIT_LAZY=0`` turns it off).

    The defaults are read from the environment when tracejit is imported (and again by
    `reset`); the values are plain attributes, so reading one costs no environment lookup.
    """

    __slots__ = ("debug", "debug_nans", "lazy", "_set", "version")

    def __init__(self):
        object.__setattr__(self, "_set", set())
        object.__setattr__(self, "version", 0)
        self._defaults()

    def _defaults(self) -> None:
        for name, var in _ENV.items():
            if name not in self._set:
                object.__setattr__(self, name, _env_flag(var, name in _DEFAULT_ON))
        object.__setattr__(self, "version", self.version + 1)

    def __setattr__(self, name: str, value) -> None:
        if name not in _ENV:
            raise AttributeError(f"tj.config has no switch {name!r}; switches: "
                                 f"{', '.join(_ENV)}")
        if not isinstance(value, bool):
            raise TypeError(f"tj.config.{name} must be True or False, got {value!r}")
        self._set.add(name)
        object.__setattr__(self, name, value)
        object.__setattr__(self, "version", self.version + 1)

    def is_set(self, name: str) -> bool:
        """Was `name` assigned at runtime (rather than taken from the environment)?"""
        return name in self._set

    def reset(self) -> None:
        """Every switch takes its environment variable's value again."""
        self._set.clear()
        self._defaults()

    def checking(self) -> bool:
        """Is any switch on that makes compiled calls check their results?"""
        return self.debug or self.debug_nans

    def __repr__(self) -> str:
        return "tj.config(" + ", ".join(f"{k}={getattr(self, k)}" for k in _ENV) + ")"


config = Config()
