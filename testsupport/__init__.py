"""Support shared by the tests and the benchmarks: real servers, proxies, probes, pipelines.

Neither `tests/` nor `benchmarks/` imports the other; both import this package.
"""
