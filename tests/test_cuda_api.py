"""`tj.cuda` device queries: they answer on machines without pycuda, a driver or a GPU, and
using a missing device raises a clear error. Importing tracejit never imports pycuda."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tracejit as tj


def test_import_does_not_load_pycuda():
    code = "import sys, tracejit; print('pycuda' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def test_queries_answer_without_raising():
    assert isinstance(tj.cuda.is_available(), bool)
    n = tj.cuda.device_count()
    assert n >= 0 and (n > 0) == tj.cuda.is_available()


@pytest.mark.skipif(tj.cuda.is_available(), reason="this machine has a usable GPU")
def test_using_a_missing_gpu_says_what_is_missing():
    for call in (tj.cuda.current_device, tj.cuda.synchronize, lambda: tj.cuda.set_device(0),
                 lambda: tj.cuda.get_device_name(0)):
        with pytest.raises(RuntimeError, match="CUDA is not available: .*docs/gpu.md"):
            call()
    with pytest.raises(ValueError, match="expected a CUDA device"):
        tj.cuda.set_device("cpu")


def test_empty_cuda_visible_devices_hides_every_gpu():
    code = ("import tracejit as tj; print(tj.cuda.device_count(), tj.cuda.is_available())")
    env = {**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout.strip()
    assert out == "0 False"


@pytest.mark.gpu
@pytest.mark.skipif(not tj.cuda.is_available(), reason="needs a CUDA GPU and pycuda")
def test_gpu_queries():
    assert tj.cuda.device_count() >= 1
    tj.cuda.set_device(0)
    assert tj.cuda.current_device() == 0
    assert isinstance(tj.cuda.get_device_name(0), str)
    tj.cuda.synchronize()
