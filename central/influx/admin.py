"""Administering an InfluxDB 1.x server with InfluxQL: ``POST /query``.

For the statements that change the server (``CREATE``/``ALTER RETENTION POLICY``,
``CREATE``/``DROP CONTINUOUS QUERY``, ``CREATE DATABASE``, ``SELECT ... INTO``) and the ``SHOW``
statements that read its set-up back. 1.x wants POST for statements that change something; the
reader (:mod:`central.influx.reader`) sends read-only queries as GET.
"""

from __future__ import annotations

from typing import Any

from central.influx.session import SessionOwner

__all__ = ["InfluxAdmin"]


class InfluxAdmin(SessionOwner):
    """Runs InfluxQL statements; raises :class:`~central.errors.InfluxError` naming the one
    refused. Built from an :class:`~central.influx.config.InfluxServer` (and ``transport=``)."""

    @property
    def server_version(self) -> str | None:
        """The ``X-Influxdb-Version`` of the last answer (``None`` before the first)."""
        return self._session.server_version

    def run(self, statement: str, *, database: str | None = None) -> list[dict[str, Any]]:
        """The results of ``statement`` (one per statement it holds)."""
        params = {"db": database} if database else {}
        results: list[dict[str, Any]] = []
        for answer in self._session.query(statement, params=params, post=True):
            results.extend(answer.get("results") or [])
        return results

    def rows(
        self, statement: str, *, database: str | None = None
    ) -> list[tuple[str | None, dict[str, Any]]]:
        """Every row of the answer to ``statement``, as its series name and ``{column: value}``."""
        return [
            (series.get("name"), dict(zip(series["columns"], values, strict=True)))
            for result in self.run(statement, database=database)
            for series in result.get("series") or []
            for values in series.get("values") or []
        ]
