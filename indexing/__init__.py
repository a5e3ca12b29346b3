"""Catalog reading, the index mapping, text encoders and index loading (`shoprank.indexing`)."""
