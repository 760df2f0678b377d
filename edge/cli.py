"""Subcommands of this part (placeholder until the part is built)."""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register this part's subcommands; each sets ``handler`` to a function(args) -> exit code."""
