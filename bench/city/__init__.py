"""City scale: 400 emulated gateways × 80 seats against one broker, one consumer (then two
sharing the load) and one live service, all on this machine.

    .venv/bin/python -m bench.city --runs 3 --json /tmp/city.json --keep /tmp/city
    .venv/bin/python -m bench.city --gateways 400 --seats 80 --changes-per-seat-hour 3 \\
        --window 10 --stress-rates 500,2000,4000,8000 --step 8  # the defaults, about 3 minutes

One stack for the whole run: a private Mosquitto (the queue and in-flight limits of
``deploy/mosquitto/qihe.conf``; snapshots every second, see ``--persistence``), a private
InfluxDB 1.6, ``qihe live`` and the consumer (``central.consumer.Consumer`` in a worker
process, ``python -m bench.city.consumer_worker``, that answers with its counters when asked)
as child processes with generated configs (the sample configs of ``config/`` with this
stack's addresses), and a load generator: one MQTT connection per gateway, each speaking the
wire contract as ``edge/publisher.py`` does (client id ``qihe-gw-{site}-gw1``, a retained
``offline`` Last Will and a retained ``online`` status for its session, its own status topic
subscribed, readings at QoS 1 on their per-sensor topics, retained as ``RETAINED_KINDS``
says, at most ``--inflight`` awaiting PUBACK; the rest wait in its outbox). The gateways are
paho-mqtt clients driven by one ``selectors`` loop per generator process (``python -m
bench.city.generator``, ``--generator-processes`` of them): no thread per connection, no
asyncio future per message. Seat payloads are formatted directly (checked byte for byte
against ``encode_payload`` at start); the others go through the contract's models.

1. **Initial state**: every gateway connects and publishes what a gateway sends after a
   reconnect: its status, a HELLO (``device``) and a first heartbeat per board, and every
   seat's state (32,000 retained seat topics), as fast as the in-flight windows allow. Timed
   until the consumer stored it all and the live service shows every seat.
2. **City rate** (``--runs`` windows of ``--window`` s, each once the live service caught
   up): seat changes, Poisson-timed, ``--changes-per-seat-hour`` per seat, plus each gateway's
   periodic reports (per board a heartbeat and a link report, per gateway an outbox and a
   system report, every ``--report-interval`` s): 67 messages/s at the defaults.
3. **Stress ladder** (``--stress-rates``, ``--step`` s each, all kinds counted): up until a
   rate does not hold; if the first did not, halved (twice at most); then once halfway
   between the best that held and the first that did not. After each step the gateways stop
   changing seats and the consumer drains.
4. **Two consumers** in one ``mqtt.shared_group`` (own client ids, a fresh database; the one
   consumer stopped and its session ended): the rate where one consumer stopped keeping up
   and the one below it, then the exactly-once check over every message published since they
   subscribed (N, each reading its own identity): the sum of their ``received`` is N, each got
   some, and InfluxDB holds N points stamped since then (counted per measurement).
   Mosquitto before 2.0.13 (Debian's 2.0.11 included) sends every retained message to each
   new member of a shared subscription: that replay is waited out and reported apart.

Definitions. *Published*: messages the broker PUBACKed to the gateways. *Consumer lag*:
published minus acked by the consumer(s) (which ack only once InfluxDB stored the points),
sampled every 0.25 s; in seconds, the age of the oldest message not yet acked. *Live lag*: the
same against the live service's ``/healthz`` ``messages_received``. A step *holds* when the
broker took ≥ 95 % of the offered rate, the consumer's backlog grew by at most 10 % of the rate
(least squares after its first flush), its lag stayed ≤ ``--max-lag`` s and it drained after.
*End to end*: t0 is the reading's own ``ts`` (the gateway stamps it as it makes the change and
queues it), t1 the arrival of its ``seat`` event at a client of ``/api/v1/events`` in this
process; the event carries the reading's ``ts`` as ``since``, so each event names its change.
A seat is not changed again within a few seconds, so no change is folded into the next. The
gateway's outbox commit (``outbox.commit_interval``; ``bench/live_latency``) is not in it.
CPU is read from ``/proc`` per process over each stretch, in % of one core; *machine busy* is
every process's (others' included) share of all cores, from ``/proc/stat``.

The package, one job a module: ``sites`` (the city's sites and boards), ``payload`` (seat
payloads formatted directly), ``gateway`` (one emulated gateway's MQTT side), ``generator``
(the load generator's worker process), ``consumer_worker`` (the consumer's worker process),
``stack`` (broker, InfluxDB, live service and workers, and their configs), ``measure``
(samples, lag, end-to-end latency, a stretch's figures), ``ladder`` (the stress ladder and
when a step holds), ``phases`` (the phases on the running stack), ``report`` (rows and
tables) and ``run`` (the command line; ``__main__`` runs it).
"""

# Imports nothing, so a worker (``python -m bench.city.generator``) loads only what it uses.
__all__: list[str] = []
