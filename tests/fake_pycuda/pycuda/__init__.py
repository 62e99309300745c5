"""A stand-in for pycuda (tests only): the subset of its API tracejit's PyCudaDriver uses,
with the same signatures, backed by tracejit's CUDA host emulation. It lets the test suite run
the pycuda code path (runtime/cuda.py `PyCudaDriver`) on machines without a GPU; it checks the
arguments it is given the way pycuda would reject them."""
