"""Celery app and tasks (`shoprank.workers`): embedding, bulk writes and re-index workflows.

Until the Celery pipeline lands, `shoprank index load` runs the same steps in-process
(`shoprank.indexing.loader`).
"""
