"""The durable outbox: every reading is stored on the gateway before anything else.

SQLite in WAL mode with ``synchronous=FULL``: a committed reading survives a
SIGKILL or a power cut, and the file is never left corrupt. Readings are
grouped into one transaction per ``commit_interval`` (or ``commit_max``
readings), so an SD card sees one write burst per group, not one per reading.
The same transaction stores each serial board's sequence state, so after a
restart the gateway knows exactly which of a board's resent reports it has
already stored (``edge/sequence.py``).

A reading leaves the store only after the broker acknowledged it (PUBACK); the
deletes ride along with the next commit. The store is bounded
(``max_readings``): when full, the oldest periodic telemetry (heartbeats, link
counters) goes first, then the oldest reading of any kind; drops are counted by
kind, kept in the store, and logged.

While commits fail (the card full or read-only, the database locked by another
process) readings wait in memory, bounded by ``max_pending`` with the same
policy (``edge/outbox/pending.py``). Readings dropped there are counted by kind at
once (``dropped``, the gateway's outbox health reading) and written to the
store's ``drops`` table by the first commit that works again — the same
transaction that stores the boards' sequence state. A board's acknowledgement
follows that commit, so it covers every report the gateway stored *or counted
as dropped*: a report dropped from memory was already taken for a new one
(``edge/sequence.py``), so a resend would be a repeat and could not bring it
back; the board forgets it and the drop is reported, never silent. What is in
memory when the gateway stops with the store still failing is lost and cannot
be counted in the store (it is logged); boards resend it, as it was never
acknowledged.

Reads for the publisher and the clock's restamp retry while the store fails
(logged once per failing stretch), and commits are never abandoned half-way: a
commit under way when the outbox is cancelled is waited for and accounted, so
the store never holds more than ``max_readings``.

The parts, one job each:

- ``outbox.py``: :class:`Outbox`, on the event loop: group commits, listeners, the
  bound in memory, reads retried while the store fails, the restamp once the clock
  is trusted;
- ``store.py``: the SQLite file (schema, commit, fetch, restamp), run on the
  outbox's one worker thread, never on the event loop; it alone keeps the counts
  of the file (``stored``, ``last_id``);
- ``pending.py``: the readings waiting in memory for the next commit.
"""

from edge.outbox.outbox import DEFAULT_MAX_PENDING, Outbox
from edge.outbox.store import StoredReading

__all__ = ["DEFAULT_MAX_PENDING", "Outbox", "StoredReading"]
