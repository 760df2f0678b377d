"""Reading with InfluxQL: ``GET /query`` on one database, the answer as :class:`Series`.

InfluxQL is the one query language InfluxDB 1.x (``/query``), 2.x (its 1.x-compatible
``/query`` with a DBRP mapping) and 3.x (``/query``, database = the 3.x database) all answer,
so one set of queries serves every deployment.

Queries go as ``GET``: they are read-only ``SELECT`` statements, which every version takes by
GET (1.x wants POST only for writes and DDL), and one query is a few hundred bytes of URL.
Answers are asked for with ``epoch=ns`` (exact integer timestamps) and ``chunked=true`` (no
``max-row-limit`` truncation on servers that set one); the chunks of a series are joined back,
and an answer still marked ``partial`` is refused rather than silently short.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from central.errors import InfluxError
from central.influx.config import InfluxServer
from central.influx.session import SessionOwner

__all__ = ["InfluxQLReader", "Series"]


@dataclass(frozen=True, slots=True)
class Series:
    """One series of an InfluxQL answer: measurement name, its tags, columns and rows."""

    name: str
    tags: dict[str, str]
    columns: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]

    def rows(self) -> Iterator[dict[str, Any]]:
        for row in self.values:
            yield dict(zip(self.columns, row, strict=True))


class InfluxQLReader(SessionOwner):
    """Sends read-only InfluxQL to one database (and retention policy, the ``rp`` parameter);
    raises :attr:`error` naming the statement."""

    #: What a failure raises: :class:`~central.errors.InfluxError`, or the subclass a user of
    #: the reader names (the statistics' errors are also their own kind).
    error: ClassVar[type[InfluxError]] = InfluxError

    def __init__(
        self,
        server: InfluxServer,
        *,
        database: str,
        retention_policy: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(server, transport=transport)
        self._params = {"db": database, "epoch": "ns", "chunked": "true"}
        if retention_policy is not None:
            self._params["rp"] = retention_policy

    def query(self, influxql: str) -> list[Series]:
        """The series of one InfluxQL statement, each chunked series joined back into one."""
        answers = self._session.query(influxql, params=self._params, error=self.error)
        merged: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[tuple[str, ...], list[Any]]]
        merged = {}
        partial = False
        for answer in answers:
            for result in answer.get("results") or []:
                partial = bool(result.get("partial", False))
                for raw in result.get("series") or []:
                    tags = tuple(
                        sorted((str(k), str(v)) for k, v in (raw.get("tags") or {}).items())
                    )
                    _, rows = merged.setdefault(
                        (str(raw.get("name", "")), tags), (tuple(raw.get("columns") or ()), [])
                    )
                    rows.extend(tuple(row) for row in raw.get("values") or [])
        if partial:
            # The last result still says more was to come: a row limit cut the answer short.
            raise self.error(
                "the answer was cut short (partial); narrow the range or raise max-row-limit",
                url=self.url,
                status=200,
                statement=influxql,
            )
        return [
            Series(name, dict(tags), columns, tuple(rows))
            for (name, tags), (columns, rows) in merged.items()
        ]
