"""Benchmarks: nnlab's hot loops against plain references (`make bench`)."""
