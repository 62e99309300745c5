"""Every runnable example in tracejit's docstrings (``>>>`` lines) runs and prints what it
says: the examples users copy are tested like the code."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import tracejit

MODULES = sorted(m.name for m in pkgutil.walk_packages(tracejit.__path__, "tracejit.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                          report=True)
    assert res.failed == 0, f"{res.failed} of {res.attempted} examples in {name} failed " \
                            "(their output is printed above)"


def test_examples_exist():
    total = 0
    for name in MODULES:
        finder = doctest.DocTestFinder()
        total += sum(len(t.examples) for t in finder.find(importlib.import_module(name)))
    assert total > 300
