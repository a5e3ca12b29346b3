"""A reranking stage for fault tests, loaded by the server through SHOPRANK_EXTRA_RERANKERS:
it sleeps SHOPRANK_TEST_RERANK_DELAY_S seconds (an injected delay, like a ranker stuck on a
dead dependency), then reverses the window."""

from __future__ import annotations

import os
import time

from shoprank.rerankers.protocol import Candidate, RerankContext


class SlowReranker:
    name = "slow"

    def rerank(self, context: RerankContext, candidates: list[Candidate]) -> list[Candidate]:
        time.sleep(float(os.environ.get("SHOPRANK_TEST_RERANK_DELAY_S", "0")))
        return list(reversed(candidates))
