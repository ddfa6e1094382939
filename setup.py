"""Build hook for the optional native log scanner; all package metadata lives in pyproject.toml."""

from setuptools import Extension, setup

# optional=True: without a C compiler the install still succeeds and zcnb uses its Python engine (and says so).
setup(ext_modules=[Extension("zcnb.logs._scan", ["zcnb/logs/_scan.c"], optional=True, extra_compile_args=["-O2"])])
