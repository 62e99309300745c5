"""Differentiation as graph transforms: forward mode (`jvp.py`), reverse mode (`vjp.py`), the
user-facing `grad`/`value_and_grad` (`api.py`), the `torch.autograd.functional`-shaped API
(`functional.py`) and custom rules (`custom.py`)."""
