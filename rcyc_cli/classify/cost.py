"""What a backfill costs on AWS Lambda, at the public on-demand price (us-east-1, first tier; check the
current price list for your region: https://aws.amazon.com/lambda/pricing/)."""

from __future__ import annotations

PRICE_PER_GB_SECOND = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
PRICE_PER_REQUEST = 0.20 / 1_000_000

# For --dry-run, which invokes nothing: the function's warm cost per image and per invocation, as measured
# by benchmarks/run.py on the 2-core build machine (slim image; docs/benchmarks.md). Lambda's CPU share
# grows with memory, so these are rough at other sizes.
ESTIMATED_MS_PER_IMAGE = 12.0
ESTIMATED_MS_PER_INVOCATION = 25.0


def gb_seconds(billed_ms: float, memory_mb: int) -> float:
    return billed_ms / 1000 * memory_mb / 1024


def cost(billed_ms: float, invocations: int, memory_mb: int, architecture: str = "x86_64") -> float:
    return gb_seconds(billed_ms, memory_mb) * PRICE_PER_GB_SECOND.get(architecture, PRICE_PER_GB_SECOND["x86_64"]) \
        + invocations * PRICE_PER_REQUEST


def estimate(images: int, batch_size: int, concurrency: int, memory_mb: int, architecture: str = "x86_64",
             ms_per_image: float = ESTIMATED_MS_PER_IMAGE) -> dict:
    """Invocations, billed time, cost and wall time for ``images`` images, from the per-image figure."""
    invocations = -(-images // batch_size) if images else 0
    billed_ms = invocations * ESTIMATED_MS_PER_INVOCATION + images * ms_per_image
    return {"invocations": invocations, "billed_ms": round(billed_ms), "gb_seconds": round(gb_seconds(billed_ms, memory_mb), 3),
            "cost_usd": round(cost(billed_ms, invocations, memory_mb, architecture), 6),
            "seconds": round(billed_ms / 1000 / max(1, min(concurrency, invocations or 1)), 1),
            "basis": f"{ms_per_image:g} ms per image + {ESTIMATED_MS_PER_INVOCATION:g} ms per invocation (benchmarks)"}
