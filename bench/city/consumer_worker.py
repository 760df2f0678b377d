"""The city's consumer, a worker process (``bench/city/stack.py`` starts it).

    python -m bench.city.consumer_worker CONFIG

``central.consumer.Consumer`` from a consumer config file, as ``qihe consumer run`` runs
it, with its counters on request: the worker prints ``{"ready": true}`` once started, then
answers each line read from stdin with one JSON line of ``Consumer.stats()``. End of stdin
stops it cleanly (flush, ack, leave), as SIGTERM does.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict

from central.consumer.config import ConsumerConfig
from central.consumer.service import Consumer
from qihe.configfile import load_config_file

__all__ = ["main", "serve"]


def serve(config_path: str) -> int:
    """Run the consumer of ``config_path``, answering stats requests until stdin closes."""
    consumer = Consumer(load_config_file(config_path, ConsumerConfig))
    consumer.start()
    try:
        print(json.dumps({"ready": True}), flush=True)
        for _line in sys.stdin:
            print(json.dumps(asdict(consumer.stats())), flush=True)
    finally:
        consumer.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m bench.city.consumer_worker CONFIG", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "httpcore", "urllib3"):  # as ``qihe consumer run`` does
        logging.getLogger(noisy).setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return serve(args[0])


if __name__ == "__main__":
    sys.exit(main())
