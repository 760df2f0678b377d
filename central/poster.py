"""``qihe poster SITE``: a printable A4 poster for a house's door, with a QR code to its page.

::

    qihe poster shancheng-xinyuan2 --url https://qihe.hebi.example --out posters/

writes ``posters/shancheng-xinyuan2.png`` (A4 at 300 dpi) and ``.pdf`` (one A4 page): the
house's name (Chinese, and English when the directory has it), a QR code to its public page
(``BASE/public?site=SITE``: free seats now and the seat map) and what the page shows — counts
only, nothing about a person. The QR code is made by ``segno`` (pure Python); the text is set in
WenQuanYi Micro Hei (Debian's ``fonts-wqy-microhei``), found with ``fc-match`` or at its usual
path.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import segno
from PIL import Image, ImageDraw, ImageFont

from central.sites import SiteDirectory, SiteSpec

__all__ = ["PosterError", "find_font", "make_poster", "public_url"]

#: A4 at 300 dpi, portrait.
DPI = 300
A4 = (2480, 3508)
BRAND = (15, 94, 87)  # the pages' 淇河 green-blue
FONT_NAME = "WenQuanYi Micro Hei"
FONT_PATHS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/wqy-microhei/wqy-microhei.ttc"),
)
KIND_TITLE = {
    "book_house": ("淇河书屋", "Qihe Book House"),
    "day_care": ("日间照料中心", "Day-care centre"),
    "canteen": ("长者食堂", "Community canteen"),
    "other": ("便民服务", "Community service"),
}


class PosterError(Exception):
    """What ``qihe poster`` tells the operator in one line; ``status`` is the exit status
    (2: bad input, such as an unknown site; 1: the machine cannot do it)."""

    def __init__(self, message: str, *, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Poster:
    url: str
    png: Path
    pdf: Path


def public_url(base: str, site_id: str) -> str:
    """The house's public page: ``BASE/public?site=SITE``."""
    return f"{base.rstrip('/')}/public?site={quote(site_id, safe='')}"


def find_font() -> Path:
    """The CJK font's file; raise :class:`PosterError` when it is not installed."""
    if shutil.which("fc-match"):
        try:
            found = subprocess.run(
                ["fc-match", "-f", "%{file}", f"{FONT_NAME}:lang=zh-cn"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            found = ""
        if found and "wqy-microhei" in found.lower() and Path(found).is_file():
            return Path(found)
    for path in FONT_PATHS:
        if path.is_file():
            return path
    raise PosterError(
        f"找不到中文字体 {FONT_NAME}: 请安装 fonts-wqy-microhei / the Chinese font is missing: "
        "apt-get install fonts-wqy-microhei"
    )


def make_poster(
    directory: SiteDirectory, site_id: str, base_url: str, out_dir: Path, *, font: Path
) -> Poster:
    """Draw the poster of ``site_id`` and write its PNG and PDF into ``out_dir``."""
    site = next((s for s in directory.sites if s.id == site_id), None)
    if site is None:
        known = ", ".join(s.id for s in directory.sites) or "none"
        raise PosterError(
            f"没有这个站点 no such site {site_id!r} in the directory (known: {known})", status=2
        )
    if not site.public:
        raise PosterError(
            f"{site_id}: 该站点不在公开页面上 the site is not on the public page (public: false)",
            status=2,
        )
    url = public_url(base_url, site_id)
    image = _draw(site, url, font)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        png, pdf = out_dir / f"{site_id}.png", out_dir / f"{site_id}.pdf"
        image.save(png, "PNG", dpi=(DPI, DPI), optimize=True)
        image.save(pdf, "PDF", resolution=float(DPI), title=site.name, author="qihe-edge")
    except OSError as exc:
        raise PosterError(f"{out_dir}: 无法写入 cannot write the poster: {exc}") from exc
    return Poster(url, png, pdf)


def qr_image(url: str, size: int) -> Image.Image:
    """The QR code of ``url`` (error correction M, 4 modules of quiet zone), ``size`` px wide."""
    code = segno.make(url, error="m", micro=False, boost_error=False)
    modules = code.symbol_size(scale=1, border=4)[0]
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=max(1, size // modules), border=4)
    buffer.seek(0)
    return Image.open(buffer).convert("L")


def _draw(site: SiteSpec, url: str, font_path: Path) -> Image.Image:
    width, height = A4
    image = Image.new("RGB", A4, "white")
    draw = ImageDraw.Draw(image)

    def font(size: int) -> ImageFont.FreeTypeFont:
        return ImageFont.truetype(str(font_path), size)

    kind_zh, kind_en = KIND_TITLE.get(site.kind, KIND_TITLE["other"])
    draw.rectangle((0, 0, width, 420), fill=BRAND)
    _centred(draw, kind_zh, 150, font(150), width, fill="white")
    _centred(draw, kind_en, 330, font(72), width, fill="white")

    y = 560
    for line in _wrap(draw, site.name, font(170), width - 240):
        _centred(draw, line, y, font(170), width, fill=(27, 36, 48))
        y += 210
    if site.name_en:
        for line in _wrap(draw, site.name_en, font(80), width - 240):
            _centred(draw, line, y + 20, font(80), width, fill=(85, 96, 110))
            y += 100
    qr = qr_image(url, 1500)
    top = max(y + 80, 1150)
    image.paste(qr.convert("RGB"), ((width - qr.width) // 2, top))
    y = top + qr.height + 60
    _centred(draw, "微信扫码 · 查看实时空闲座位", y, font(110), width, fill=BRAND)
    _centred(draw, "Scan for free seats right now", y + 150, font(72), width, fill=(85, 96, 110))
    _centred(draw, url, y + 270, font(48), width, fill=(85, 96, 110))
    _centred(
        draw,
        "只显示座位数量与空闲状态，不涉及任何个人信息",
        height - 220,
        font(60),
        width,
        fill=(85, 96, 110),
    )
    _centred(
        draw,
        "Seat counts only, nothing about any person",
        height - 130,
        font(48),
        width,
        fill=(85, 96, 110),
    )
    return image


def _centred(
    draw: ImageDraw.ImageDraw,
    text: str,
    y: int,
    font: ImageFont.FreeTypeFont,
    width: int,
    *,
    fill: object,
) -> None:
    left, _top, right, _bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((width - (right - left)) // 2, y), text, font=font, fill=fill)  # type: ignore[arg-type]


def _wrap(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, most: int
) -> list[str]:
    """Lines of ``text`` no wider than ``most`` px (CJK breaks anywhere; at most 3 lines)."""
    lines: list[str] = []
    line = ""
    for char in text:
        if line and draw.textlength(line + char, font=font) > most:
            lines.append(line)
            line = char.lstrip()
        else:
            line += char
    lines.append(line)
    return lines[:3]
