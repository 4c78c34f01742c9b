from benchmark.execution.grid import expand
from benchmark.results.job import Job

CK = [("random", "a" * 64), ("mine", "b" * 64)]
TASKS = [("t1", "1", [1.0, 0.1]), ("t2", "2", [1.0])]


def test_grid_is_the_full_cross_product_without_duplicates():
    jobs = expand(CK, TASKS, [("linear", "1")], [42, 1], "demo")
    assert len(jobs) == 2 * (2 + 1) * 1 * 2
    assert len({j.job_id for j in jobs}) == len(jobs)


def test_job_ids_are_deterministic_and_sensitive_to_every_field():
    job = Job("random", "a" * 64, "t1", "1", "linear", "1", 0.1, 42, "demo")
    assert job.job_id == Job("random", "a" * 64, "t1", "1", "linear", "1", 0.1, 42, "demo").job_id
    assert job.job_id.startswith("t1--linear--random--s0.1--seed42--")
    variants = [job.__class__(**{**job.__dict__, field: value}) for field, value in [
        ("checkpoint_sha256", "c" * 64), ("task_version", "2"), ("protocol_version", "2"), ("scale", 0.01),
        ("seed", 1), ("profile", "paper"), ("split_version", 0)]]
    assert len({v.job_id for v in variants} | {job.job_id}) == len(variants) + 1


def test_grid_order_does_not_depend_on_input_order():
    a = expand(CK, TASKS, [("linear", "1")], [42, 1], "demo")
    b = expand(CK[::-1], TASKS[::-1], [("linear", "1")], [1, 42], "demo")
    assert [j.job_id for j in a] == [j.job_id for j in b]
