"""rcyc_core: the recyclable-item classifier's function code and its one inference core.

The Lambda function (``lambda/app.py``) and the ``rcyc`` CLI both import this package, so labels,
preprocessing, backends and the result contract exist exactly once.
"""

from .labels import LABELS

__all__ = ["LABELS"]
