"""Bringing a server to the plan: compare what it has with the plan (pure), read what it has,
and run what differs (``qihe stats-setup``, :mod:`central.usage.downsample.cli`).

:func:`plan_changes` compares without I/O; :func:`read_state` reads the database's retention
policies and continuous queries with ``SHOW`` statements; :func:`apply` runs the statements.
All talking goes through :class:`central.influx.admin.InfluxAdmin`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from central.errors import CentralError
from central.influx.admin import InfluxAdmin
from central.influx.config import InfluxServer
from central.usage.downsample.plan import (
    CQ_PREFIX,
    QUERIES,
    RAW,
    RETENTION_POLICIES,
    RetentionPolicy,
)
from central.usage.downsample.ql import format_duration, ident, same_query
from qihe.configtypes import Duration, Name

__all__ = [
    "DownsampleConfig",
    "DownsampleError",
    "PolicyState",
    "ServerState",
    "apply",
    "check_server",
    "plan_changes",
    "read_state",
]


class DownsampleError(CentralError, RuntimeError):
    """The server cannot be downsampled this way: it is not InfluxDB 1.x."""


class DownsampleInflux(InfluxServer):
    """The ``influx`` mapping of ``config/stats.yaml``, as far as downsampling needs it.

    Extra keys are ignored: the file belongs to the statistics (which validate it whole with
    their own model); this reads only the server, the database and the credentials.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    database: Name
    #: Per statement; a backfill day of the whole city takes seconds, not minutes.
    timeout: Duration = timedelta(seconds=60)


class DownsampleConfig(BaseModel):
    """``config/stats.yaml`` as ``qihe stats-setup`` reads it: only its ``influx`` mapping."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    influx: DownsampleInflux


@dataclass(frozen=True, slots=True)
class PolicyState:
    """A retention policy as ``SHOW RETENTION POLICIES`` reports it."""

    name: str
    duration: timedelta | None
    shard_duration: timedelta
    replication: int
    default: bool


@dataclass(frozen=True, slots=True)
class ServerState:
    """What the plan is compared with: does the database exist, its policies and queries."""

    database_exists: bool
    policies: Mapping[str, PolicyState] = field(default_factory=dict)
    queries: Mapping[str, str] = field(default_factory=dict)


Outcome = Literal["created", "altered", "replaced", "dropped", "unchanged"]


@dataclass(frozen=True, slots=True)
class Change:
    """What setup does (or found already done) for one database, policy or query."""

    kind: Literal["database", "retention policy", "continuous query"]
    name: str
    outcome: Outcome
    statements: tuple[str, ...] = ()
    detail: str = ""

    def line(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.kind} {self.name}: {self.outcome}{detail}"


def _describe(policy: RetentionPolicy) -> str:
    default = ", default" if policy.default else ""
    duration, shard = format_duration(policy.duration), format_duration(policy.shard_duration)
    return f"{duration}, shard {shard}{default}"


def plan_changes(state: ServerState, database: str) -> list[Change]:
    """Everything setup must do to bring ``state`` to the plan, and what is already right."""
    changes: list[Change] = []
    policies = state.policies
    if state.database_exists:
        changes.append(Change("database", database, "unchanged"))
    else:
        # Created with raw as its default policy, so it never gets an unused autogen.
        statement = (
            f"CREATE DATABASE {ident(database)} WITH DURATION {format_duration(RAW.duration)} "
            f"REPLICATION 1 SHARD DURATION {format_duration(RAW.shard_duration)} "
            f"NAME {ident(RAW.name)}"
        )
        changes.append(Change("database", database, "created", (statement,), "raw is its default"))
    previous_default = next((p.name for p in policies.values() if p.default), None)
    for policy in RETENTION_POLICIES:
        if policy is RAW and not state.database_exists:
            detail = f"with the database: {_describe(RAW)}"
            changes.append(Change("retention policy", RAW.name, "created", (), detail))
            continue
        changes.append(
            _policy_change(policy, policies.get(policy.name), database, previous_default)
        )
    for query in QUERIES:
        wanted = query.statement(database)
        found = state.queries.get(query.name)
        if found is None:
            changes.append(Change("continuous query", query.name, "created", (wanted,)))
        elif same_query(found, wanted):
            changes.append(Change("continuous query", query.name, "unchanged"))
        else:
            drop = f"DROP CONTINUOUS QUERY {ident(query.name)} ON {ident(database)}"
            changes.append(
                Change("continuous query", query.name, "replaced", (drop, wanted), "text differed")
            )
    planned = {q.name for q in QUERIES}
    for name in sorted(state.queries):
        if name.startswith(CQ_PREFIX) and name not in planned:
            drop = f"DROP CONTINUOUS QUERY {ident(name)} ON {ident(database)}"
            changes.append(
                Change("continuous query", name, "dropped", (drop,), "no longer in the plan")
            )
    return changes


def _policy_change(
    policy: RetentionPolicy, found: PolicyState | None, database: str, previous_default: str | None
) -> Change:
    if found is None:
        detail = _describe(policy)
        if policy.default and previous_default not in (None, policy.name):
            detail += f"; the default was {previous_default}, whose points stay there"
        return Change(
            "retention policy", policy.name, "created", (policy.create_statement(database),), detail
        )
    differences: list[str] = []
    if found.duration != policy.duration:
        shorter = policy.duration is not None and (
            found.duration is None or found.duration > policy.duration
        )
        warning = ": older points are deleted" if shorter else ""
        was, now = format_duration(found.duration), format_duration(policy.duration)
        differences.append(f"duration {was} → {now}{warning}")
    if found.shard_duration != policy.shard_duration:
        was, now = format_duration(found.shard_duration), format_duration(policy.shard_duration)
        differences.append(f"shard {was} → {now} for new shards")
    if found.replication != 1:
        differences.append(f"replication {found.replication} → 1")
    if policy.default and not found.default:
        differences.append(f"made the default (was {previous_default})")
    if not differences:
        return Change("retention policy", policy.name, "unchanged", (), _describe(policy))
    return Change(
        "retention policy",
        policy.name,
        "altered",
        (policy.alter_statement(database),),
        "; ".join(differences),
    )


# -- talking to InfluxDB 1.x --------------------------------------------------------------------


def check_server(admin: InfluxAdmin) -> str:
    """The server's version; refuse anything but 1.x (it has no CQs or retention policies)."""
    admin.run("SHOW DATABASES")
    version = (admin.server_version or "unknown").lstrip("v")
    if not version.startswith("1."):
        raise DownsampleError(
            f"{admin.url} is InfluxDB {version}: retention policies and continuous queries are "
            "InfluxDB 1.x; for 2.x create the tasks of docs/downsampling.md"
        )
    return version


_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|µs|us|ns)")
_GO_UNITS = {
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
    "us": timedelta(microseconds=1),
    "µs": timedelta(microseconds=1),
    "ns": timedelta(0),
}


def _go_duration(text: str) -> timedelta:
    """``2160h0m0s`` as SHOW RETENTION POLICIES prints durations."""
    total = timedelta(0)
    for number, unit in _GO_DURATION.findall(text):
        total += float(number) * _GO_UNITS[unit]
    return total


def read_state(admin: InfluxAdmin, database: str) -> ServerState:
    """The database's retention policies and continuous queries, read with SHOW statements."""
    names = {str(row["name"]) for _, row in admin.rows("SHOW DATABASES")}
    if database not in names:
        return ServerState(database_exists=False)
    policies: dict[str, PolicyState] = {}
    for _, row in admin.rows(f"SHOW RETENTION POLICIES ON {ident(database)}"):
        duration = _go_duration(str(row["duration"]))
        policies[str(row["name"])] = PolicyState(
            name=str(row["name"]),
            duration=duration or None,
            shard_duration=_go_duration(str(row["shardGroupDuration"])),
            replication=int(row["replicaN"]),
            default=bool(row["default"]),
        )
    queries = {
        str(row["name"]): str(row["query"])
        for name, row in admin.rows("SHOW CONTINUOUS QUERIES")
        if name == database
    }
    return ServerState(True, policies, queries)


def apply(admin: InfluxAdmin, changes: Sequence[Change]) -> None:
    """Run the statements of ``changes`` in order (database, policies, then queries)."""
    for change in changes:
        for statement in change.statements:
            admin.run(statement)
