"""Moments reads only committed Kafka records: an aborted transaction's are no events.

A producer of touchpoints or outcomes may write in transactions (exactly-once pipelines,
transactional outboxes, Kafka Streams and Flink do) and abort one to take its records
back. Those records stay in the log; only a consumer that reads committed skips them.
aiokafka reads uncommitted unless told otherwise, and so did the worker, the learners and
``rebuild``: a worker applied an aborted purchase as revenue and an aborted call as a pop
alert, and decided offers on them.

Every consumer Moments builds passes :data:`READ_COMMITTED` as its ``isolation_level``
(the learners, the replays of ``rebuild``, ``lift`` and ``dead-letters``, the API's alert
reader, the demo, the simulator and the bench); the Faust worker's, which Faust builds,
reads committed through :mod:`streams.committed_worker`.

Reading committed has Kafka's cost: a transaction a producer leaves open holds its
partition at the last stable offset until it is committed, aborted or timed out (see
docs/known-limits.md).
"""

from __future__ import annotations

from typing import Final

READ_COMMITTED: Final = "read_committed"
