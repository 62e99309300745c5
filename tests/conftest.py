"""Shared pytest configuration: the --update-golden option and the repository root."""

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


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
