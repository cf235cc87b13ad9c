"""Lambda entry point: CMD ["app.handler"]. The work lives in the rcyc_core package beside this file."""

from rcyc_core.function import handler

__all__ = ["handler"]
