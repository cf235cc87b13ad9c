"""The five classes, in the order every model output and every result uses."""

LABELS: tuple[str, ...] = (
    "boxes",
    "glass_bottles",
    "soda_cans",
    "crushed_soda_cans",
    "plastic_bottles",
)
