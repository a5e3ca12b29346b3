"""`/_shoprank/experiments`: online experiments between two search configurations (admin
scope). Being built."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["experiments"])
