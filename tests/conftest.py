"""Shared pytest configuration: the --update-golden option, the repository root, and a
private on-disk compile cache for the session (the suite never touches the user's cache)."""

import os
import pathlib
import shutil
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The suite runs in parallel (pytest-xdist, one worker per core): libraries that start a thread
# per core in every worker would oversubscribe the machine many times over. Set before numpy is
# imported; tests of tracejit's own threads set TRACEJIT_NUM_THREADS themselves.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


_CACHE_DIR = None


def pytest_configure(config):
    # Before any test compiles: every compilation of this session (and of the subprocesses it
    # starts, which inherit the environment) uses a fresh temporary disk cache.
    # (pytest-xdist workers inherit the controller's directory and share it: compiled CUDA
    # emulation batches of the test tables are then built once, not once per worker)
    global _CACHE_DIR
    if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("TRACEJIT_TEST_CACHE_DIR"):
        os.environ["TRACEJIT_CACHE_DIR"] = os.environ["TRACEJIT_TEST_CACHE_DIR"]
        return
    _CACHE_DIR = tempfile.mkdtemp(prefix="tracejit-test-cache-")
    os.environ["TRACEJIT_CACHE_DIR"] = os.environ["TRACEJIT_TEST_CACHE_DIR"] = _CACHE_DIR


def pytest_unconfigure(config):
    if _CACHE_DIR is not None:
        shutil.rmtree(_CACHE_DIR, ignore_errors=True)
        os.environ.pop("TRACEJIT_TEST_CACHE_DIR", None)


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the golden files under tests/golden from current output")


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")


@pytest.fixture
def repo_root(monkeypatch) -> pathlib.Path:
    """Runs the test from the repository root, so printed source paths are stable."""
    monkeypatch.chdir(ROOT)
    return ROOT


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core this process may really use (a container's CPU quota,
    not the host's core count), at most 8: every worker JIT-compiles, so more workers than
    cores only thrash."""
    from tracejit.runtime.host import available_cpus
    return min(8, available_cpus())
