"""fi-spark's benchmarks: one script per measurement over a shared harness (bench.harness).

Run each from the repository root as a module, e.g. `python -m bench.journal`, `python -m bench.scale --quick`;
`python -m bench.run_all` runs them all (quick forms) and writes bench/RESULTS.md. Each script's docstring says
what it measures and ends its output with one `name: ...` summary line.
"""
