"""The names of the Kafka headers a dead letter, and a record sent back from one, carry.

Apart from :mod:`agents.letters`, which writes them: what only reads them
(``moments dead-letters``) needs nothing more.
"""

# where the record came from, and why it was set aside
SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET = "source-topic", "source-partition", "source-offset"
ERROR = "error"
ERROR_MAX = 1000  # the longest reason a letter gives (characters)
CUT = "\u2026"  # ends a reason cut to ERROR_MAX characters
# letters written before reasons were marked when cut were cut to these lengths
UNMARKED_CUTS = (500, 1000)

REDRIVEN_FROM = "redriven-from"  # the header ``moments dead-letters --redrive`` sets
# ...with this one: when the record was first dead-lettered (ms since the epoch), which a
# letter written again keeps, so that the dedupe horizon counts from the first letter
FIRST_LETTERED = "first-dead-lettered"
# ...and a letter's: when the worker took its record to handle it, before any attempt to
# apply it. A letter may be written long after (a batch retried through an outage), and
# the dedupe horizon of an event applied then counts from then.
FIRST_HANDLED = "first-handled"
LETTER_NAME_MAX = 300  # a letter's name, ``topic:partition:offset``, is shorter
TRUNCATED_FROM = "value-truncated-from"  # the original length of a letter's value cut short
KEY_TRUNCATED_FROM = "key-truncated-from"  # the original length of a key a letter replaced
# a letter the dead-letter topic refused whole, written again reduced (agents.reduced_letters):
# Kafka's answer to the whole letter, and the record's Kafka timestamp (ms), to find it by
LETTER_REFUSED = "letter-refused"
SOURCE_TIMESTAMP = "source-timestamp"


def error_text(reason: str) -> str:
    """``reason`` as a letter's ``error`` header gives it: at most ``ERROR_MAX``
    characters, ending with ``CUT`` when it was longer.

    >>> error_text("x" * 2000)[-3:], len(error_text("x" * 2000)), error_text("short")
    ('xx\u2026', 1000, 'short')
    """
    return reason if len(reason) <= ERROR_MAX else reason[: ERROR_MAX - 1] + CUT
