"""Stage scripts, run as ``python -m stages.<stage>``: importing nnlab first pins the float kernels
before a stage imports numpy or torch (nnlab/kernels.py)."""
import nnlab  # noqa: F401
