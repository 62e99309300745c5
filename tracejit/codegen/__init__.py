"""Code generators: Kernel IR -> LLVM IR (`llvm.py`, scalar lowerings in `lower.py`, math library
bridge in `mathlib_bridge.py`)."""
