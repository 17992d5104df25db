"""Benchmarks of the performance budget (README "Performance"). Run with ``make bench`` or ``python -m bench``.

Benchmarks are not tests: they print figures and PASS/FAIL against the budget, and never run under pytest.
Each benchmark is a module that registers itself with ``bench.registry.register``; ``bench.registry.MODULES``
lists those modules (add a rotation benchmark module there).
"""
