"""Queries to ranked shots: the searcher, the label postings it reads, and saved searches."""
