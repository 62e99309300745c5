"""Runtimes: what executes graphs (the numpy interpreter now; LLVM and CUDA later)."""
