"""Test doubles shared by the tests and benchmarks: tiny models, the naive scorer, a simulated
learner, in-memory stores. No product module imports this package, except the model loader,
on demand, when a configuration names a ``tiny-*`` model (for tests and dry runs)."""
