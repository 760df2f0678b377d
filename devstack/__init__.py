"""Local real servers (Mosquitto, InfluxDB 1.x) for tests, the demo and benchmarks."""

from devstack.processes import DevStackError, InfluxdProcess, MosquittoProcess, free_port

__all__ = ["DevStackError", "InfluxdProcess", "MosquittoProcess", "free_port"]
