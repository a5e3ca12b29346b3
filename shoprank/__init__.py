"""shoprank: shopper-aware product search for Elasticsearch, OpenSearch and an embedded engine."""

__version__ = "0.1.0"
__all__ = ["__version__"]
