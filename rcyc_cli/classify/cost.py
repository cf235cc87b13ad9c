"""What a backfill costs on AWS Lambda, at the public on-demand price (us-east-1, first tier; check the
current price list for your region: https://aws.amazon.com/lambda/pricing/)."""

from __future__ import annotations

from ..defaults import DEFAULT_ARCHITECTURE

PRICE_PER_GB_SECOND = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
PRICE_PER_REQUEST = 0.20 / 1_000_000
# S3 Standard requests (us-east-1): PUT/COPY/POST/LIST, and GET. Per image a backfill makes one PUT (its
# result) and two GETs (the function reads the image; classify reads the stored result to skip done keys);
# per invocation the function's conditional GET of the pointer; per 1,000 keys two LISTs (count, then run).
PRICE_PER_S3_PUT = 0.005 / 1000
PRICE_PER_S3_GET = 0.0004 / 1000
# A cold start per concurrent instance (the slim image's measured init: docs/benchmarks.md, docker / slim),
# billed like the handler's time.
ESTIMATED_COLD_START_MS = 525.0

# For --dry-run, which invokes nothing: the function's warm cost per image and per invocation, as measured
# by benchmarks/run.py on the 2-core build machine (slim image; docs/benchmarks.md). Lambda's CPU share
# grows with memory, so these are rough at other sizes.
ESTIMATED_MS_PER_IMAGE = 12.0
ESTIMATED_MS_PER_INVOCATION = 25.0


def gb_seconds(billed_ms: float, memory_mb: int) -> float:
    return billed_ms / 1000 * memory_mb / 1024


def cost(billed_ms: float, invocations: int, memory_mb: int, architecture: str = DEFAULT_ARCHITECTURE) -> float:
    return gb_seconds(billed_ms, memory_mb) * PRICE_PER_GB_SECOND.get(architecture, PRICE_PER_GB_SECOND[DEFAULT_ARCHITECTURE]) \
        + invocations * PRICE_PER_REQUEST


def estimate(images: int, batch_size: int, concurrency: int, memory_mb: int, architecture: str = DEFAULT_ARCHITECTURE,
             ms_per_image: float = ESTIMATED_MS_PER_IMAGE) -> dict:
    """Invocations, billed time (cold starts included), Lambda's and S3's request costs and wall time for
    ``images`` images, from the per-image figure."""
    invocations = -(-images // batch_size) if images else 0
    cold_starts = min(concurrency, invocations)
    billed_ms = invocations * ESTIMATED_MS_PER_INVOCATION + images * ms_per_image + cold_starts * ESTIMATED_COLD_START_MS
    lambda_usd = cost(billed_ms, invocations, memory_mb, architecture)
    puts, gets, lists = images, 2 * images + invocations, 2 * -(-images // 1000)
    s3_usd = (puts + lists) * PRICE_PER_S3_PUT + gets * PRICE_PER_S3_GET
    return {"invocations": invocations, "cold_starts": cold_starts, "billed_ms": round(billed_ms),
            "gb_seconds": round(gb_seconds(billed_ms, memory_mb), 3), "lambda_usd": round(lambda_usd, 6),
            "s3_requests": {"put": puts, "get": gets, "list": lists}, "s3_usd": round(s3_usd, 6),
            "cost_usd": round(lambda_usd + s3_usd, 6),
            "seconds": round(billed_ms / 1000 / max(1, min(concurrency, invocations or 1)), 1),
            "basis": f"{ms_per_image:g} ms per image + {ESTIMATED_MS_PER_INVOCATION:g} ms per invocation + "
                     f"{ESTIMATED_COLD_START_MS:g} ms per cold start (benchmarks); S3 Standard request prices"}
