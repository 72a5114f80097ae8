"""Export query results to a Braze cohort.

Stages of one run, one module each: ``identifiers`` (result columns to
identifiers), ``plan`` (what to send: add, remove, mirror), ``batches``
(requests of at most 1,000 identifiers with stable numbers), ``client`` (the
partner API client: retries, pacing), ``run`` (one durable export run).
"""
