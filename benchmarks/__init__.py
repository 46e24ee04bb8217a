"""Side-by-side benchmarks (not tests): `python -m benchmarks.<name>`; results in benchmarks/RESULTS.md."""
