"""``python -m bench.city``: the city benchmark (``bench/city/run.py``)."""

import sys

from bench.city.run import main

sys.exit(main())
