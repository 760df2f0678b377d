"""Local real servers (Mosquitto, InfluxDB 1.x, Prometheus) for tests, the demo and benchmarks."""

from devstack.processes import (
    DevStackError,
    InfluxdProcess,
    MosquittoProcess,
    PrometheusProcess,
    free_port,
)

__all__ = ["DevStackError", "InfluxdProcess", "MosquittoProcess", "PrometheusProcess", "free_port"]
