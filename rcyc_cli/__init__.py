"""rcyc: the local-first developer CLI for the recyclable-item classifier on AWS Lambda."""

__version__ = "0.1.0"
