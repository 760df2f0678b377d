"""``qihe poster SITE``: the command of :mod:`central.poster` (the drawing loads only when it
runs: every ``qihe`` command registers this parser)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qihe.configfile import ConfigError

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "poster",
        help="a printable poster (PNG and PDF) with a QR code to a house's public page",
        description=(
            "门贴海报: an A4 poster for the door of a house, with its name and a QR code to "
            "its public page (BASE/public?site=SITE)."
        ),
    )
    parser.add_argument("site", metavar="SITE", help="the site's id in the directory")
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:8080",
        help="the public address of the live service (default: %(default)s, for a try only)",
    )
    parser.add_argument("--out", type=Path, default=Path("."), help="folder to write into")
    parser.add_argument(
        "--sites",
        type=Path,
        default=Path("config/sites.yaml"),
        help="the site directory (default: %(default)s)",
    )
    parser.set_defaults(handler=run_poster)


def run_poster(args: argparse.Namespace) -> int:
    # Here, not at the top: every ``qihe`` command registers this parser, and a gateway on a
    # Pi must not load Pillow and its libraries to run.
    from central.poster import PosterError, find_font, make_poster
    from central.sites import load_directory

    if not args.url.startswith(("http://", "https://")):
        print(f"qihe poster: --url {args.url!r} 不是 http(s) 地址 is not an http(s) address",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        directory = load_directory(args.sites, args.sites.resolve())
        poster = make_poster(directory, args.site, args.url, args.out, font=find_font())
    except ConfigError as exc:
        print(f"qihe poster: {exc}", file=sys.stderr)
        return 2
    except PosterError as exc:
        print(f"qihe poster: {exc}", file=sys.stderr)
        return exc.status
    if "127.0.0.1" in args.url or "localhost" in args.url:
        print("注意 note: 二维码指向本机地址，张贴前请用 --url 给出公开地址 / the QR code points "
              "at this machine: give the public address with --url before printing",
              file=sys.stderr)  # fmt: skip
    print(f"{poster.png}\n{poster.pdf}\n二维码 QR: {poster.url}")
    return 0
