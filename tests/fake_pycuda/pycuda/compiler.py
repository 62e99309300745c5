"""`pycuda.compiler.SourceModule` for tests (see __init__.py): compiles through the host
emulation instead of nvcc."""

import os

from tracejit.codegen.cuda import HEADER_DIR
from tracejit.runtime import cuda_emu

from . import driver


class _Function:
    def __init__(self, mod, name):
        self.mod, self.name, self.arg_format = mod, name, None

    def prepare(self, arg_types):
        if not all(c == "P" for c in arg_types):
            raise TypeError(f"unsupported argument types {arg_types!r}")
        self.arg_format = arg_types
        return self

    def prepared_call(self, grid, block, *args, shared_size=0):
        driver._current()
        if self.arg_format is None or len(args) != len(self.arg_format):
            raise TypeError("prepared_call: arguments do not match prepare()")
        if not (isinstance(grid, tuple) and len(grid) in (2, 3)):
            raise TypeError(f"grid must be a 2- or 3-tuple, got {grid!r}")
        if not (isinstance(block, tuple) and len(block) == 3):
            raise TypeError(f"block must be a 3-tuple, got {block!r}")
        self.mod.launch(self.name, grid, block, [int(a) for a in args])
        driver._count("launch")


class SourceModule:
    def __init__(self, source, nvcc="nvcc", options=None, keep=False, no_extern_c=False,
                 arch=None, code=None, cache_dir=None, include_dirs=()):
        if not no_extern_c:
            raise ValueError("tracejit's sources declare extern \"C\" themselves")
        if not any(os.path.samefile(d, HEADER_DIR) for d in include_dirs):
            raise ValueError("the kernels/cuda headers are not on the include path")
        if arch is not None and not arch.startswith("sm_"):
            raise ValueError(f"bad arch {arch!r}")
        if cache_dir is not None and not os.path.isdir(cache_dir):
            raise ValueError(f"cache_dir {cache_dir!r} is not a directory")
        self._mod = cuda_emu.module(source)
        driver._count("SourceModule")

    def get_function(self, name):
        self._mod.function(name)  # (KeyError when absent, as pycuda's LogicError)
        return _Function(self._mod, name)
