"""Export query results to a Braze cohort.

One run goes through four stages, reported as they start to the caller's
reporter (:mod:`reporting`): ``staging`` (:mod:`staging`, with
:mod:`identifiers`: the result's identifiers deduplicated out of core),
``planning`` (:mod:`plan`, :mod:`planners`, :mod:`mirror`: what to send, by
the planner of the export's operation), ``sending`` (:mod:`batches`,
:mod:`send`, :mod:`client`, and the :mod:`sinks` of the destination types:
cohort import requests of at most 1,000 identifiers, or :mod:`rest_attribute`'s
``/users/track`` requests of 75 attribute objects, with stable numbers,
retried and paced) and ``committing`` (a mirror's snapshot, the
run's report). :mod:`run` drives them, :mod:`stopping` stops them
cooperatively, and :mod:`resume`, :mod:`locks`, :mod:`snapshots` and
:mod:`formats` make a run durable. Nothing here draws on a terminal.
"""
