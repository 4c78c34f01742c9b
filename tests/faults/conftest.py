"""The fault and bad-input matrix: each case is one test that feeds ctbench broken or hostile
input and asserts the documented outcome (one-line error naming the file, exit code, nothing
lost). Hypothesis runs derandomised and without an example database, so CI is reproducible and
bounded."""
from hypothesis import HealthCheck, settings

settings.register_profile("ctbench", max_examples=150, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ctbench")
