"""The automatic choice of Ray workers (:func:`retrieval.parallel.auto_workers`); the pool itself runs in tests/retrieval/scale."""

from retrieval.parallel import PARALLEL_ABOVE, auto_workers, choose_workers


def test_small_jobs_and_small_machines_stay_in_process():
    assert auto_workers(PARALLEL_ABOVE - 1, cpus=64, gpus=8) == 1  # below the threshold: Ray's start-up is not worth it
    assert auto_workers(10**6, cpus=2, gpus=0) == 1  # 2 cores: two actors measured 1.02x one process
    assert auto_workers(10**6, cpus=2, gpus=1) == 1


def test_large_jobs_get_a_worker_per_gpu_or_per_two_cores():
    assert auto_workers(PARALLEL_ABOVE, cpus=16, gpus=0) == 8
    assert auto_workers(10**6, cpus=4, gpus=1) == 2
    assert auto_workers(10**6, cpus=16, gpus=4) == 4
    assert auto_workers(100, above=10, cpus=8, gpus=0) == 4


def test_a_given_count_wins_and_a_cluster_gets_two_by_default():
    assert choose_workers(3, None, 10) == 3
    assert choose_workers(None, "127.0.0.1:6379", 10) == 2
    assert choose_workers(None, None, 10) == 1
