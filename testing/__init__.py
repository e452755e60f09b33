"""Test doubles shared by the tests and benchmarks: tiny models, the naive scorer, a simulated
learner, in-memory stores. Nothing in the product imports this package."""
