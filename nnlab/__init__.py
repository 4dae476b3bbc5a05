"""nnlab: the library behind the nnlab DVC pipeline.

Stage scripts in ``stages/`` stay thin: they read their own section of
``params.yaml`` through :mod:`nnlab.params`, call into this package, and write
their outputs through :mod:`nnlab.io`.
"""
from nnlab import kernels

kernels.pin()   # before numpy or torch loads: nnlab/kernels.py
