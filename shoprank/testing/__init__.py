"""Test support shipped with the package: tiny models, a recording transport for the
official cluster clients, and the backend behaviour suite every backend runs.

Nothing here is imported by the serving path; tests and benchmarks import the modules they
need directly (`shoprank.testing.<module>`).
"""
