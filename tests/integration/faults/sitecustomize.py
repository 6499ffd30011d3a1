"""A fault injector for worker processes the integration tests start: loaded only by a
process whose PYTHONPATH names this directory (see ``FAULTS_PATH`` in
``tests/integration/test_lost_produce_reply.py``), and active only when
``MOMENTS_TEST_LOSE_PRODUCE_REPLY`` names a topic suffix.

The first ProduceRequest to a topic whose name ends so is sent and its reply awaited (the
broker has written the batch), then the connection is closed and the reply reported lost
(``KafkaConnectionError``): what a broker restart or a network cut between the write and
its acknowledgment looks like to aiokafka, which sends the batch again. A line goes to the
file ``MOMENTS_TEST_LOSE_PRODUCE_REPLY_MARKER`` names, so that the test knows the fault
happened.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_SUFFIX = os.environ.get("MOMENTS_TEST_LOSE_PRODUCE_REPLY")

if _SUFFIX:
    from aiokafka.conn import AIOKafkaConnection, CloseReason
    from aiokafka.errors import KafkaConnectionError

    _send = AIOKafkaConnection.send
    _marker = os.environ["MOMENTS_TEST_LOSE_PRODUCE_REPLY_MARKER"]
    _lost: list[str] = []

    def _topics(request: Any) -> list[str]:
        return [str(t[0]) for t in getattr(request, "_topics", None) or []]

    def _note(topics: list[str]) -> None:
        Path(_marker).write_text(f"reply lost for a produce request to {topics}\n")

    def _losing_send(self: Any, request: Any, expect_response: bool = True) -> Any:
        reply = _send(self, request, expect_response)
        topics = _topics(request)
        if (_lost or type(request).__name__ != "ProduceRequest"
                or not any(t.endswith(_SUFFIX) for t in topics)):  # fmt: skip
            return reply
        _lost.append("lost")

        async def lost() -> Any:
            await reply  # written and acknowledged by the broker
            self.close(reason=CloseReason.CONNECTION_BROKEN)
            _note(topics)
            raise KafkaConnectionError("the broker's reply was lost (injected)")

        return lost()

    AIOKafkaConnection.send = _losing_send
