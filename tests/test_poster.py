"""``qihe poster``: an A4 poster (PNG and PDF) whose QR code reads back as the house's page."""

from __future__ import annotations

from pathlib import Path

import pytest
import segno
import zxingcpp
from PIL import Image

from central.poster import A4, PosterError, find_font, make_poster, public_url, qr_image
from central.sites import SiteDirectory
from qihe_cli.main import main

SITES = Path(__file__).resolve().parent.parent / "config" / "sites.yaml"
DIRECTORY = SiteDirectory.model_validate(
    {
        "sites": [
            {"id": "shancheng-xinyuan2", "name": "淇河书屋·馨苑二区站",
             "name_en": "Qihe Book House, Xinyuan No. 2"},
            {"id": "qibin-fenghuang-daycare", "name": "淇滨区凤凰城社区日间照料中心",
             "kind": "day_care", "public": False},
        ]
    }
)  # fmt: skip
URL = "https://qihe.hebi.example/public?site=shancheng-xinyuan2"


def test_the_public_url_names_the_site_in_the_query() -> None:
    assert public_url("https://qihe.hebi.example/", "shancheng-xinyuan2") == URL


def test_the_poster_is_an_a4_png_and_pdf_whose_qr_code_reads_back_as_the_page(
    tmp_path: Path,
) -> None:
    poster = make_poster(
        DIRECTORY, "shancheng-xinyuan2", "https://qihe.hebi.example", tmp_path, font=find_font()
    )

    assert poster.url == URL
    with Image.open(poster.png) as image:
        assert image.size == A4
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)
        found = zxingcpp.read_barcodes(image)
    assert [(code.text, code.format) for code in found] == [(URL, zxingcpp.BarcodeFormat.QRCode)]
    pdf = poster.pdf.read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert b"/MediaBox [ 0 0 595.2 841.92 ]" in pdf  # A4 in points: 2480 x 3508 px at 300 dpi
    assert pdf.rstrip().endswith(b"%%EOF")


def test_the_qr_code_is_segnos_encoding_of_the_url_module_for_module() -> None:
    code = segno.make(URL, error="m", micro=False, boost_error=False)
    modules = code.symbol_size(scale=1, border=4)[0]
    image = qr_image(URL, modules * 10)  # 10 px a module
    drawn = [
        [image.getpixel((x * 10 + 5, y * 10 + 5)) == 0 for x in range(4, modules - 4)]
        for y in range(4, modules - 4)
    ]
    assert drawn == [[bool(m) for m in row] for row in code.matrix]


def test_an_unknown_site_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(PosterError, match=r"no such site 'nowhere'.*shancheng-xinyuan2") as info:
        make_poster(DIRECTORY, "nowhere", "https://x.example", tmp_path, font=find_font())
    assert info.value.status == 2
    assert list(tmp_path.iterdir()) == []


def test_a_site_off_the_public_page_gets_no_poster(tmp_path: Path) -> None:
    with pytest.raises(PosterError, match="not on the public page"):
        make_poster(
            DIRECTORY, "qibin-fenghuang-daycare", "https://x.example", tmp_path, font=find_font()
        )


def test_the_command_writes_both_files_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "posters"
    status = main(
        ["poster", "qibin-taoyuan", "--url", "https://qihe.hebi.example", "--out", str(out),
         "--sites", str(SITES)]
    )  # fmt: skip

    printed = capsys.readouterr()
    assert status == 0
    assert printed.out.splitlines() == [
        str(out / "qibin-taoyuan.png"),
        str(out / "qibin-taoyuan.pdf"),
        "二维码 QR: https://qihe.hebi.example/public?site=qibin-taoyuan",
    ]
    assert "127.0.0.1" not in printed.err


def test_the_command_refuses_an_unknown_site_and_a_bad_url_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = main(["poster", "nowhere", "--sites", str(SITES), "--out", str(tmp_path)])
    unknown_err = capsys.readouterr().err.strip().splitlines()[-1]
    bad_url = main(["poster", "qibin-taoyuan", "--url", "ftp://x", "--sites", str(SITES)])
    bad_url_err = capsys.readouterr().err.strip()

    assert unknown == bad_url == 2
    assert unknown_err.startswith("qihe poster: 没有这个站点 no such site 'nowhere'")
    assert bad_url_err == "qihe poster: --url 'ftp://x' 不是 http(s) 地址 is not an http(s) address"
