"""classify --dry-run's estimate counts what a backfill really pays for: Lambda's time (cold starts included)
and requests, and S3's requests (a PUT per result, GETs of each image and stored result, the listings)."""

from rcyc_cli.classify import cost


def test_a_million_images_count_s3_requests_and_cold_starts():
    estimate = cost.estimate(1_000_000, batch_size=16, concurrency=32, memory_mb=1024)
    assert estimate["invocations"] == 62_500 and estimate["cold_starts"] == 32
    assert estimate["s3_requests"]["put"] == 1_000_000 and estimate["s3_requests"]["get"] == 2_062_500
    # about $5 of PUTs and $0.8 of GETs: the part the old estimate ($0.24) left out
    assert 5.8 < estimate["s3_usd"] < 5.9
    assert estimate["cost_usd"] == round(estimate["lambda_usd"] + estimate["s3_usd"], 6)
    without_cold = cost.estimate(1_000_000, batch_size=16, concurrency=1, memory_mb=1024)
    assert estimate["billed_ms"] - without_cold["billed_ms"] == 31 * cost.ESTIMATED_COLD_START_MS


def test_nothing_to_do_costs_nothing():
    estimate = cost.estimate(0, batch_size=16, concurrency=32, memory_mb=1024)
    assert estimate["cost_usd"] == 0 and estimate["cold_starts"] == 0
