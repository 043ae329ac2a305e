"""Hand-written CPU kernels (C++ XLA FFI custom calls), built on first use (`build.py`).

Each kernel has a pure-JAX equivalent that every backend can run; the models choose the kernel only
on CPU and only when it built (`conv_impl='auto'`), so a machine without a C++ compiler runs as
before, just slower.
"""
