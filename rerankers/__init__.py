"""Query understanding, rewriting, features and ranking models (`shoprank.rerankers`)."""

from .protocol import Candidate, RerankContext, Reranker

__all__ = ["Candidate", "RerankContext", "Reranker"]
