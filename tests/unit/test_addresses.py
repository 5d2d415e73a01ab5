"""Addresses as SES accepts them: normalization, the fast path's safety, masking."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailblast.domain import addresses
from mailblast.domain.addresses import dedupe_key, mask_email, normalize_address
from mailblast.domain.errors import InvalidAddressError

FIXTURES = Path(__file__).parent.parent / "fixtures"


def _vectors() -> list[tuple[str, str]]:
    lines = (FIXTURES / "emails.tsv").read_text(encoding="utf-8").split("\n")
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")]
    assert rows[0] == ["address", "expected", "source"]
    return [(address, expected) for address, expected, _source in rows[1:]]


VECTORS = _vectors()


def _reference(address: str) -> str | None:
    """What email-validator makes of ``address`` with the options SES needs, or None."""
    try:
        validated = validate_email(
            address.strip(),
            allow_smtputf8=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            strict=True,
            check_deliverability=False,
        )
    except EmailNotValidError:
        return None
    return validated.ascii_email


@pytest.mark.parametrize(
    ("address", "expected"),
    VECTORS,
    ids=[f"{i}-{expected}" for i, (_, expected) in enumerate(VECTORS)],
)
def test_email_validator_vectors(address: str, expected: str) -> None:
    """Each "valid" vector of email-validator's suite is accepted, each "invalid" one refused."""
    if expected == "valid":
        assert normalize_address(address) == _reference(address)
    else:
        with pytest.raises(InvalidAddressError):
            normalize_address(address)


def test_vectors_cover_both_outcomes() -> None:
    """The fixture holds both kinds of vector (a guard against a truncated copy)."""
    kinds = [expected for _, expected in VECTORS]
    assert kinds.count("valid") >= 10
    assert kinds.count("invalid") >= 50


@pytest.mark.parametrize(
    ("raw", "sent"),
    [
        ("taro@example.com", "taro@example.com"),
        ("  taro@example.com\t", "taro@example.com"),
        ("\u3000taro@example.com\u3000", "taro@example.com"),  # ideographic spaces
        ("Taro.Yamada@Example.CO.JP", "Taro.Yamada@example.co.jp"),
        ("user@ドメイン.jp", "user@xn--eckwd4c7c.jp"),
        ("user@ＥＸＡＭＰＬＥ.jp", "user@example.jp"),  # full-width letters in the domain
        ("user@xn--eckwd4c7c.jp", "user@xn--eckwd4c7c.jp"),
        ("Info@Example.com", "info@example.com"),  # RFC 2142 names are case-insensitive
        ("a+tag@sub.example.org", "a+tag@sub.example.org"),
        ("!#$%&'*+-/=?^_`.{|}~@example.tld", "!#$%&'*+-/=?^_`.{|}~@example.tld"),
        ("x" * 64 + "@example.com", "x" * 64 + "@example.com"),
    ],
)
def test_normalize_returns_the_address_as_sent(raw: str, sent: str) -> None:
    """Whitespace goes, the domain is lowercased and punycoded, the local part is kept."""
    assert normalize_address(raw) == sent


@pytest.mark.parametrize(
    ("raw", "reason_part"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("taro", "@-sign"),
        ("たろう@example.com", "Internationalized characters before the @-sign"),
        ('"quoted"@example.com', "quoting"),
        ("Taro <taro@example.com>", "display name"),
        ("taro@[192.0.2.1]", "bracketed"),
        ("taro@localhost", "period"),
        ("taro@example.test", "special-use"),
        ("x" * 65 + "@example.com", "too long before the @-sign"),
        ("taro@" + "a" * 64 + ".com", "so many characters"),
        ("taro..yamada@example.com", "two periods"),
        ("taro@example.com.", "end with a period"),
        ("taro@exa_mple.com", "invalid characters"),
        ("taro＠example.com", "full-width"),
    ],
)
def test_normalize_refuses_what_ses_refuses(raw: str, reason_part: str) -> None:
    """An address SES would refuse raises InvalidAddressError with a reason a person reads."""
    with pytest.raises(InvalidAddressError) as caught:
        normalize_address(raw)
    assert reason_part.casefold() in caught.value.reason.casefold()
    assert not caught.value.reason.endswith(".")


def test_total_length_limit() -> None:
    """254 characters are accepted, 255 are refused."""
    domain = ".".join(["d" * 62] * 3) + ".example.com"  # long labels, a dotted domain
    local = "l" * (254 - 1 - len(domain))
    assert len(normalize_address(f"{local}@{domain}")) == 254
    with pytest.raises(InvalidAddressError, match="too long"):
        normalize_address(f"{local}l@{domain}")


# Address-like ASCII strings: a well-formed address (atext local part, LDH labels, local
# parts and labels near their 64/63-character limits, odd and special-use TLDs), then up
# to three edits with characters that matter to address syntax: dots, hyphens, quotes,
# brackets, whitespace, a second @, ... Most results sit right at the edge of validity.
_ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
_LDH = string.ascii_letters + string.digits + "-"
_SYNTAX = '.-@"()[]\\,;:<> \t_xX09'
_TLDS = ["com", "jp", "net", "com", "jp", "Org", "c0m", "a", "museum", "test", "local",
         "localhost", "onion", "invalid", "arpa", "xn--jxalpdlp", "xn--zz", "ab--c", "c-",
         "9a", "co1"]  # fmt: skip
_atoms = st.text(_ATEXT, min_size=1, max_size=12) | st.integers(55, 66).map(lambda n: "l" * n)
_labels = (
    st.text(_LDH, min_size=1, max_size=12)
    | st.integers(60, 66).map(lambda n: "a" * (n - 2) + "-b")
    | st.sampled_from(["xn--eckwd4c7c", "xn--a", "ab--cd", "g--a", "-a", "a-"])
)
_well_formed = st.builds(
    lambda atoms, labels, tld: f"{'.'.join(atoms)}@{'.'.join([*labels, tld])}",
    st.lists(_atoms, min_size=1, max_size=3),
    st.lists(_labels, min_size=1, max_size=4),
    st.sampled_from(_TLDS) | st.text(_LDH, min_size=1, max_size=6),
)
_edits = st.lists(
    st.tuples(st.integers(0, 300), st.sampled_from(["insert", "replace", "delete"]),
              st.sampled_from(_SYNTAX)),
    max_size=3,
)  # fmt: skip


def _edit(address: str, edits: list[tuple[int, str, str]]) -> str:
    for position, operation, char in edits:
        at = position % (len(address) + 1)
        if operation == "insert":
            address = address[:at] + char + address[at:]
        elif operation == "replace":
            address = address[:at] + char + address[at + 1 :]
        else:
            address = address[:at] + address[at + 1 :]
    return address


_edited = st.builds(_edit, _well_formed, _edits)
_address_like = _well_formed | _edited | _edited | st.text(_ATEXT + _SYNTAX, max_size=80)


@settings(max_examples=3000)
@given(_address_like)
@example("a@b.co")
@example("Info@EXAMPLE.com")
@example("ab@xn--eckwd4c7c.jp")
@example("a@b.test")
@example("a@ab--c.com")
@example("0@0---0.com")
@example("a@b.c-")
@example("a@9b.com")
@example("x" * 64 + "@" + "a" * 63 + ".com")
def test_fast_path_never_accepts_what_email_validator_rejects(address: str) -> None:
    """The regex fast path accepts only what email-validator accepts, and returns the same."""
    reference = _reference(address)
    fast = addresses._normalize_fast(address)
    if fast is not None:
        assert reference is not None, f"fast path accepted {address!r}"
        assert fast == reference


@settings(max_examples=1000)
@given(_address_like)
def test_normalize_agrees_with_email_validator(address: str) -> None:
    """normalize_address accepts exactly what email-validator accepts, in its ASCII form."""
    reference = _reference(address)
    if reference is None:
        with pytest.raises(InvalidAddressError):
            normalize_address(address)
    else:
        assert normalize_address(address) == reference


@given(
    st.from_regex(
        r"[a-z0-9]{1,20}(\.[a-z0-9]{1,10}){0,2}@[a-z0-9]{1,20}\.(com|jp|net)", fullmatch=True
    )
)
def test_fast_path_takes_ordinary_addresses(address: str) -> None:
    """Ordinary lowercase ASCII addresses go through the fast path, not email-validator."""
    assert addresses._normalize_fast(address) == address


def test_dedupe_key_ignores_case() -> None:
    """Two spellings that differ only in case have the same de-duplication key."""
    assert dedupe_key("Taro@Example.com") == dedupe_key("taro@example.COM")
    assert dedupe_key("taro@example.com") != dedupe_key("jiro@example.com")


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("taro@example.com", "t***@example.com"),
        ("t@example.com", "***@example.com"),
        ("no-at-sign", "***"),
        ("", "***"),
        (" Taro.Yamada@example.co.jp ", "T***@example.co.jp"),
    ],
)
def test_mask_email_never_shows_the_local_part(address: str, masked: str) -> None:
    """Masking keeps at most the first character of the local part."""
    assert mask_email(address) == masked


def test_addresses_in_free_text_are_masked_in_any_script() -> None:
    """Log and error texts never carry a whole address, ASCII or not."""
    from mailblast.domain.addresses import mask_addresses

    text = "to taro@例え.jp, 山田@example.jp and <a.b+c@x.co.jp>"
    assert mask_addresses(text) == "to t***@例え.jp, 山***@example.jp and <a***@x.co.jp>"
