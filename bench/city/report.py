"""What the city run found, and how it is shown: the suite's rows, the table of stretches,
the printed summary and the JSON file."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.city.measure import Span
from bench.harness import Row, Target, median, write_rows

__all__ = [
    "SCENARIO",
    "Results",
    "initial_line",
    "print_report",
    "rows",
    "span_line",
    "spans_table",
    "write_json",
]

SCENARIO = "city scale"


@dataclass(slots=True)
class Results:
    """Every figure of one run."""

    initial: dict[str, float] = field(default_factory=dict)
    spans: list[Span] = field(default_factory=list)
    check_one: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    memory_city: dict[str, float] = field(default_factory=dict)
    memory_end: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def span_line(s: Span) -> str:
    verdict = "holds" if s.holds else "does not hold"
    return (
        f"  {s.phase}, {s.label} {s.offered:,.0f}/s: published {s.published:,.0f}/s, stored "
        f"{s.consumed:,.0f}/s, lag max {s.lag_max:,} ({s.lag_max_s:.1f} s, growing "
        f"{s.lag_growth:+,.0f}/s); live lag max {s.live_lag_max:,} ({s.live_lag_max_s:.1f} s); e2e "
        f"{s.e2e_samples:,} samples p50 {_ms(s.p50)} p99 {_ms(s.p99)}, no event {s.e2e_lost}, "
        f"resyncs {s.resyncs}; "
        f"CPU {', '.join(f'{k} {v:.0f}%' for k, v in s.cpu.items())}, machine "
        f"{s.machine_busy:.0f}% busy; {verdict}"
    )


def initial_line(marks: dict[str, float]) -> str:
    return (
        f"{marks.get('messages', 0):,.0f} messages; all connected at {marks['connected']:.1f} s, "
        f"all PUBACKed at {marks['published']:.1f} s, stored at {marks['stored']:.1f} s, "
        f"every seat on the live service at {marks['live']:.1f} s"
    )


def spans_table(spans: Sequence[Span]) -> str:
    names = list(spans[0].cpu) if spans else []
    lines = [
        "| consumers | stretch | offered /s | published /s | stored /s | lag max | lag growth | "
        "live lag max | "
        "e2e samples | p50 | p99 | max | no event | resyncs | "
        + " | ".join(f"CPU {n}" for n in names)
        + " | machine busy | holds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        + "---|" * len(names)
        + "---|---|",
    ]
    for s in spans:
        lines.append(
            f"| {s.phase} | {s.label} | {s.offered:,.0f} | {s.published:,.0f} | "
            f"{s.consumed:,.0f} | {s.lag_max:,} ({s.lag_max_s:.1f} s) | "
            f"{s.lag_growth:+,.0f}/s | {s.live_lag_max:,} ({s.live_lag_max_s:.1f} s) | "
            f"{s.e2e_samples:,} | "
            f"{_ms(s.p50)} | {_ms(s.p99)} | {_ms(s.max)} | {s.e2e_lost:,} | {s.resyncs} | "
            + " | ".join(f"{s.cpu[n]:.0f}%" for n in names)
            + f" | {s.machine_busy:.0f}% | "
            + ("–" if s.label != "stress" else "yes" if s.holds else "no")
            + " |"
        )
    return "\n".join(lines)


def _rates(spans: Sequence[Span]) -> str:
    return ", ".join(f"{s.offered:,.0f}" for s in spans)


def _limiter(span: Span | None) -> str:
    """Which process was busiest when the rate stopped holding (a hint, not a proof)."""
    if span is None:
        return "every step held (none higher tried)"
    ranked = sorted(span.cpu.items(), key=lambda kv: -kv[1])
    busiest = ", ".join(f"{name} {cpu:.0f}%" for name, cpu in ranked[:4])
    return (
        f"at {span.offered:,.0f}/s the backlog grew {span.lag_growth:,.0f}/s; CPU {busiest} "
        f"of a core; the machine {span.machine_busy:.0f}% busy (ours "
        f"{sum(span.cpu.values()) / (os.cpu_count() or 1):.0f}%)"
    )


def rows(results: Results, args: argparse.Namespace) -> list[Row]:
    spans = results.spans
    city = [s for s in spans if s.phase == "one consumer" and s.label.startswith("city")]
    one = [s for s in spans if s.phase == "one consumer" and s.label == "stress"]
    two = [s for s in spans if s.phase == "two consumers" and s.label == "stress"]
    best_one = max((s for s in one if s.holds), key=lambda s: s.offered, default=None)
    best_two = max((s for s in two if s.holds), key=lambda s: s.offered, default=None)
    fail_one = min((s for s in one if not s.holds), key=lambda s: s.offered, default=None)
    fail_two = min((s for s in two if not s.holds), key=lambda s: s.offered, default=None)
    shared = results.shared
    initial = results.initial
    first_step = one[0] if one else None
    first = first_step.offered if first_step else 0.0
    city_rate = city[0].offered if city else 0.0

    def lag(span: Span | None) -> float | None:
        return None if span is None else span.lag_max_s

    out = [
        Row(
            SCENARIO,
            "sustained messages/s, one consumer keeping up",
            None if best_one is None else best_one.published,
            "msg/s",
            runs=[] if best_one is None else [best_one.published],
            note=f"ladder {_rates(one)}; limit {_limiter(fail_one)}",
        ),
        Row(
            SCENARIO,
            "sustained messages/s, two consumers (shared subscription)",
            None if best_two is None else best_two.published,
            "msg/s",
            runs=[] if best_two is None else [best_two.published],
            note=f"ladder {_rates(two)}; limit {_limiter(fail_two)}",
        ),
        Row(
            SCENARIO,
            f"consumer lag, max at city rate ({city_rate:,.0f} msg/s)",
            median([s.lag_max_s for s in city]),
            "s",
            runs=[s.lag_max_s for s in city],
            note=f"in messages: {', '.join(f'{s.lag_max:,}' for s in city)}",
        ),
        Row(
            SCENARIO,
            "consumer lag, max at the sustained rate",
            lag(best_one),
            "s",
            runs=[] if best_one is None else [best_one.lag_max_s],
        ),
        Row(
            SCENARIO,
            "end to end p50, seat change → live page, city rate",
            median([s.p50 for s in city]),
            "ms",
            runs=[s.p50 for s in city if s.p50 is not None],
        ),
        Row(
            SCENARIO,
            "end to end p99, seat change → live page, city rate",
            median([s.p99 for s in city]),
            "ms",
            target=Target("value", "<=", 20),
            runs=[s.p99 for s in city if s.p99 is not None],
            note=(
                f"{sum(s.e2e_samples for s in city):,} changes, "
                f"{sum(s.e2e_lost for s in city)} without event; from the gateway's publish "
                "(its outbox commit wait is bench/live_latency's)"
            ),
        ),
        Row(
            SCENARIO,
            "end to end max, city rate",
            median([s.max for s in city]),
            "ms",
            runs=[s.max for s in city if s.max is not None],
        ),
        Row(
            SCENARIO,
            f"end to end p99 at {first:,.0f} msg/s (the ladder's first step)",
            None if first_step is None else first_step.p99,
            "ms",
            runs=[] if first_step is None or first_step.p99 is None else [first_step.p99],
            note=(
                ""
                if first_step is None
                else f"p50 {_ms(first_step.p50)}; the live service's backlog grew "
                f"{first_step.live_lag_growth:+,.0f}/s (max {first_step.live_lag_max:,} "
                f"messages, {first_step.live_lag_max_s:.1f} s)"
            ),
        ),
        Row(
            SCENARIO,
            "live service intake, city's initial state (every seat shown)",
            initial.get("messages", 0) / initial["live_all"] if initial.get("live_all") else None,
            "msg/s",
            note=(
                f"{initial.get('messages', 0):,.0f} messages PUBACKed "
                f"{initial.get('published', 0):.0f} s after the gateways started connecting, "
                f"stored by the consumer at {initial.get('stored', 0):.0f} s, every seat shown "
                f"by the live service at {initial.get('live', 0):.0f} s, every message taken "
                f"at {initial.get('live_all', 0):.0f} s"
            ),
        ),
        Row(
            SCENARIO,
            f"live service VmRSS, {args.gateways * args.seats:,} seats at city rate",
            results.memory_city.get("live_rss_mb"),
            "MB",
        ),
        Row(
            SCENARIO,
            "live service VmHWM (peak, stress included)",
            results.memory_end.get("live_hwm_mb"),
            "MB",
        ),
        Row(
            SCENARIO,
            "broker VmHWM (peak)",
            results.memory_end.get("broker_hwm_mb"),
            "MB",
            note=f"broker CPU at city rate {median([s.cpu['broker'] for s in city]) or 0:.0f}%",
        ),
        Row(
            SCENARIO,
            "consumer CPU at city rate",
            median([s.cpu["consumer"] for s in city]),
            "% of a core",
            runs=[s.cpu["consumer"] for s in city],
            note=(
                "generator CPU at the sustained rate "
                f"{0 if best_one is None else best_one.cpu['generator']:.0f}% of a core"
            ),
        ),
        Row(
            SCENARIO,
            "shared subscription: readings lost + doubled",
            shared.get("lost_or_doubled"),
            "readings",
            target=Target("value", "<=", 0),
            note=(
                f"N={shared.get('published', 0):,} published; received "
                f"{' + '.join(f'{r:,}' for r in shared.get('received', []))}; InfluxDB holds "
                f"{shared.get('stored', 0):,}; lost {shared.get('lost')}, doubled "
                f"{shared.get('doubled')}, refused {shared.get('invalid')}; each got some: "
                f"{'yes' if shared.get('each_got_some') else 'NO'}; on subscribing each was "
                f"also sent {' / '.join(f'{r:,}' for r in shared.get('replayed', []))} retained "
                f"messages ({shared.get('replay_s', 0):.0f} s)"
            ),
        ),
    ]
    return out


def print_report(
    results: Results, table_rows: Sequence[Row], args: argparse.Namespace, info: dict[str, Any]
) -> None:
    """The run's summary on stdout: the machine, the initial state, every stretch, the rows."""
    print(
        f"\nRun {info['date']}: {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
        f"Mosquitto {info['mosquitto']}, InfluxDB {info['influxdb']}; {args.gateways} gateways × "
        f"{args.seats} seats; broker snapshots {args.persistence}; took {results.seconds:.0f} s\n"
    )
    print(f"Initial state: {initial_line(results.initial)}\n")
    print(spans_table(results.spans))
    print()
    for row in table_rows:
        value = "–" if row.value is None else f"{row.value:,.1f}"
        verdict = "" if row.met is None else f"  [{row.target}: {'met' if row.met else 'NOT met'}]"
        print(
            f"- {row.metric}: {value} {row.unit}{verdict}" + (f" — {row.note}" if row.note else "")
        )
    one = results.check_one
    print(
        f"\nOne consumer: InfluxDB holds {one.get('stored', 0):,} of {one.get('published', 0):,} "
        f"published (lost {one.get('lost')}, extra {one.get('extra')})"
    )


def write_json(path: Path, results: Results, table_rows: Sequence[Row], command: str) -> None:
    """The rows (``bench.harness.write_rows``) with every figure behind them."""
    write_rows(
        path,
        table_rows,
        command=command,
        initial=results.initial,
        spans=[asdict(s) for s in results.spans],
        one_consumer_check=results.check_one,
        shared_check=results.shared,
        memory={"city": results.memory_city, "end": results.memory_end},
        seconds=results.seconds,
    )
