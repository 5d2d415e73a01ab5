"""A realistic recipient CSV, as a Japanese office exports it from Excel (demo, benchmarks).

A copy of ``bench/_gen.py`` inside the package, because ``mailblast demo`` needs it
and ``bench/`` is not installed.

Columns: メールアドレス-style lists usually carry a name, a company, a member number and
a date; some company names hold a comma, some notes a line break, so the quoting paths of
the reader are exercised too. A known share of rows has an invalid address and a known
share repeats an earlier address (in another case, or with spaces around it), so a run
can check the exact counts.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import NamedTuple

__all__ = ["Expected", "write_csv"]

_SURNAMES = (
    ("佐藤", "sato"),
    ("鈴木", "suzuki"),
    ("高橋", "takahashi"),
    ("田中", "tanaka"),
    ("伊藤", "ito"),
    ("渡辺", "watanabe"),
    ("山本", "yamamoto"),
    ("中村", "nakamura"),
    ("小林", "kobayashi"),
    ("加藤", "kato"),
    ("吉田", "yoshida"),
    ("山田", "yamada"),
    ("佐々木", "sasaki"),
    ("山口", "yamaguchi"),
    ("松本", "matsumoto"),
    ("井上", "inoue"),
    ("木村", "kimura"),
    ("林", "hayashi"),
    ("斎藤", "saito"),
    ("清水", "shimizu"),
)
_GIVEN_NAMES = (
    ("太郎", "taro"),
    ("花子", "hanako"),
    ("翔太", "shota"),
    ("陽菜", "hina"),
    ("大輔", "daisuke"),
    ("美咲", "misaki"),
    ("健太", "kenta"),
    ("さくら", "sakura"),
    ("拓也", "takuya"),
    ("結衣", "yui"),
    ("ﾀﾛｳ", "tarou"),  # half-width katakana, as old systems export it
    ("直樹", "naoki"),
)
_DOMAINS = (
    "example.co.jp",
    "example.ne.jp",
    "example.jp",
    "mail.example.com",
    "example.or.jp",
    "Example.COM",
)
_COMPANIES = (
    "株式会社サンプル",
    "サンプル商事株式会社",
    "有限会社テスト",
    "株式会社サンプル, 大阪支社",  # a comma: the field must be quoted
    "",
)
_INVALID = (
    "{local}@{domain}.",  # trailing dot
    "{local}..x@{domain}",  # two dots in a row
    "{local}@localhost",  # no dot in the domain
    "{local}",  # no @-sign
    "{local}@@{domain}",
    "{local} x@{domain}",  # a space inside
    "山田{local}@{domain}",  # non-ASCII local part (SES cannot send it)
    "{local}@{domain}＠",  # full-width at-sign
    "<{local}@{domain}>",
    "{local}@-{domain}",
)


class Expected(NamedTuple):
    """What an intake of the generated file must report."""

    rows: int
    accepted: int
    invalid: int
    duplicates: int


def write_csv(
    path: str | Path,
    rows: int,
    *,
    encoding: str = "cp932",
    invalid_ratio: float = 0.01,
    duplicate_ratio: float = 0.01,
    seed: int = 1,
) -> Expected:
    """Write a header and ``rows`` data rows to ``path``; return the counts to expect.

    Exactly ``round(rows * invalid_ratio)`` rows have an invalid address and
    ``round(rows * duplicate_ratio)`` rows repeat an earlier valid address; every other
    address is unique. Same arguments, same bytes.
    """
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    n_invalid = round(rows * invalid_ratio)
    n_duplicates = round(rows * duplicate_ratio)
    if n_invalid + n_duplicates > max(rows - 1, 0):
        msg = "invalid_ratio + duplicate_ratio leave no room for unique rows"
        raise ValueError(msg)
    # Row 0 is always valid so every duplicate has an earlier address to repeat.
    special = rng.sample(range(1, rows), n_invalid + n_duplicates) if rows > 1 else []
    invalid = set(special[:n_invalid])
    duplicate = set(special[n_invalid:])
    sent: list[str] = []  # valid addresses so far, for duplicates to pick from
    with Path(path).open("w", encoding=encoding, newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")  # Excel writes CRLF
        writer.writerow(["メールアドレス", "氏名", "会社名", "会員番号", "登録日", "備考"])
        for i in range(rows):
            surname, surname_latin = rng.choice(_SURNAMES)
            given, given_latin = rng.choice(_GIVEN_NAMES)
            domain = rng.choice(_DOMAINS)
            local = f"{given_latin}.{surname_latin}{i}"
            if i in invalid:
                address = rng.choice(_INVALID).format(local=local, domain=domain)
            elif i in duplicate:
                address = _restyle(rng.choice(sent), rng)
            else:
                address = f"{local}@{domain}"
                sent.append(address)
            note = "" if rng.random() < 0.97 else "電話連絡希望\n平日のみ"  # a line break
            writer.writerow(
                [
                    address,
                    f"{surname} {given}",
                    rng.choice(_COMPANIES),
                    f"M{i:08d}",
                    f"2024/{rng.randint(1, 12)}/{rng.randint(1, 28)}",
                    note,
                ]
            )
    return Expected(
        rows=rows,
        accepted=rows - n_invalid - n_duplicates,
        invalid=n_invalid,
        duplicates=n_duplicates,
    )


def _restyle(address: str, rng: random.Random) -> str:
    """The same address as a person might type it again: other case, stray spaces."""
    style = rng.randrange(3)
    if style == 0:
        return address.upper()
    if style == 1:
        return f" {address} "
    return address
