"""A reranking stage for fault tests, loaded by the server through SHOPRANK_EXTRA_RERANKERS:
it blocks until the file SHOPRANK_TEST_RERANK_RELEASE names exists (like a ranker stuck on a
dead dependency, until the test has its answer and releases it), then reverses the window."""

from __future__ import annotations

import os
import time

from shoprank.rerankers.protocol import Candidate, RerankContext


class SlowReranker:
    name = "slow"

    def rerank(self, context: RerankContext, candidates: list[Candidate]) -> list[Candidate]:
        release = os.environ.get("SHOPRANK_TEST_RERANK_RELEASE")
        while release and not os.path.exists(release):
            time.sleep(0.05)
        return list(reversed(candidates))
