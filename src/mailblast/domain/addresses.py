"""Email addresses as Amazon SES accepts them: validation, normalization, masking.

SES refuses a whole ``SendBulkEmail`` call for one malformed destination, and it needs a
7-bit ASCII local part and a punycode (IDNA) domain. So every address is normalized here,
once, at import time, into exactly the string that will be sent.

Two paths give the same answers:

- a precompiled regular expression accepts the plain ASCII addresses that make up nearly
  every real list (about a microsecond each, which keeps a 200,000-row import fast);
- everything it does not accept goes to ``email_validator``, which knows IDNA, gives
  reasons a person can read, and has the final say.

The fast path is deliberately narrower than email-validator: it only accepts what
email-validator accepts too, and returns the same string (``tests/unit/test_addresses.py``
proves both with hypothesis).
"""

from __future__ import annotations

import re
from typing import Final

from email_validator import EmailNotValidError, validate_email

from mailblast.domain.errors import InvalidAddressError

__all__ = [
    "MAX_ADDRESS_LENGTH",
    "MAX_LOCAL_PART_LENGTH",
    "dedupe_key",
    "mask_addresses",
    "mask_email",
    "normalize_address",
]

MAX_ADDRESS_LENGTH: Final = 254
"""RFC 3696 errata 1690 / RFC 5321: the longest address a mail path can carry."""

MAX_LOCAL_PART_LENGTH: Final = 64
"""RFC 5321 4.5.3.1.1; email-validator checks it only in strict mode, SES always."""

# RFC 5322 atext: the characters of a dot-atom local part.
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
# A hostname label of at most 63 characters that neither starts nor ends with a hyphen.
# The lookahead sends labels with "--" as 3rd and 4th characters ("ab--c", "0---0") to the
# slow path: email-validator rejects them unless they are punycode ("xn--"), and punycode
# needs a real IDNA check.
_LABEL = r"(?![A-Za-z0-9\-]{2}--)[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
# The top-level domain must end with a letter (email-validator: all TLDs do) and must not
# be a special-use name (RFC 6761/6762/7686); we also want it to start with one, which is
# narrower than needed and therefore safe for a fast path.
_SPECIAL_USE_TLD = r"(?i:arpa|invalid|local|localhost|onion|test)"
_TLD = (
    rf"(?!{_SPECIAL_USE_TLD}\Z)(?![A-Za-z0-9\-]{{2}}--)[A-Za-z](?:[A-Za-z0-9\-]{{0,61}}[A-Za-z])?"
)
_fast_local = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*").fullmatch
_fast_domain = re.compile(rf"(?:{_LABEL}\.)+{_TLD}").fullmatch

# Domain as written -> lowercased, for domains the fast path accepted. A list has far
# fewer domains than rows (and matching a domain costs as much as the rest of the fast
# path), so this halves the cost of an address. Bounded: cleared when full.
_known_domains: dict[str, str] = {}
_KNOWN_DOMAINS_MAX: Final = 4096

# RFC 2142 mailbox names are case-insensitive and email-validator lowercases them; the
# fast path does the same so that both paths return the same string for the same input.
_ROLE_MAILBOXES: Final = frozenset(
    {
        "info",
        "marketing",
        "sales",
        "support",
        "abuse",
        "noc",
        "security",
        "postmaster",
        "hostmaster",
        "usenet",
        "news",
        "webmaster",
        "www",
        "uucp",
        "ftp",
    }
)


def normalize_address(raw: str) -> str:
    """Return ``raw`` as it will be sent through SES, or raise ``InvalidAddressError``.

    Surrounding whitespace is ignored; the domain is lowercased and an internationalized
    domain converted to punycode. The local part must be 7-bit ASCII dot-atom text of at
    most 64 characters and the whole address at most 254 characters.
    """
    address = raw.strip()
    normalized = _normalize_fast(address)
    if normalized is None:
        return _normalize_slow(address)
    return normalized


def _normalize_fast(address: str) -> str | None:
    """The normalized plain ASCII address, or None to leave the decision to email-validator."""
    # The local part cannot hold an @-sign, so the last one is the only possible split.
    local, at, domain = address.rpartition("@")
    lowered_domain = _known_domains.get(domain)
    if lowered_domain is None:
        if not at or _fast_domain(domain) is None:
            return None
        lowered_domain = domain.lower()
        if len(_known_domains) >= _KNOWN_DOMAINS_MAX:
            _known_domains.clear()
        _known_domains[domain] = lowered_domain
    if (
        _fast_local(local) is None
        or len(local) > MAX_LOCAL_PART_LENGTH
        or len(address) > MAX_ADDRESS_LENGTH
    ):
        return None
    lowered = local.lower()
    if lowered in _ROLE_MAILBOXES:
        local = lowered
    return f"{local}@{lowered_domain}"


def _normalize_slow(address: str) -> str:
    if not address:
        raise InvalidAddressError("the address is empty")
    try:
        validated = validate_email(
            address,
            # SES needs an ASCII local part (no SMTPUTF8); the domain may still be
            # internationalized, and ascii_email below gives it as punycode.
            allow_smtputf8=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            allow_empty_local=False,
            # strict adds only the 64-character local part limit, which SES enforces.
            strict=True,
            check_deliverability=False,
        )
    except EmailNotValidError as exc:
        raise InvalidAddressError(_readable(str(exc))) from None
    ascii_email = validated.ascii_email
    if ascii_email is None:  # pragma: no cover - allow_smtputf8=False already refuses these
        raise InvalidAddressError("the part before the @-sign must be plain ASCII")
    return ascii_email


def _readable(message: str) -> str:
    """email-validator's sentence, shaped to follow "invalid address: " in a report."""
    message = message.removesuffix(".")
    if len(message) > 1 and message[0].isupper() and message[1].islower():
        message = message[0].lower() + message[1:]
    return message


def dedupe_key(address: str) -> str:
    """The key under which two addresses count as the same recipient (case-insensitive).

    Local parts are case-sensitive by the letter of RFC 5321, but no real mailbox provider
    treats them so, and mailing ``Taro@`` and ``taro@`` twice is the failure users notice.
    """
    return address.casefold()


def mask_email(address: str) -> str:
    """A form of ``address`` safe for logs: the first character of the local part only.

    ``taro@example.com`` becomes ``t***@example.com``; a one-character local part is
    hidden entirely, and a string without an @-sign becomes ``***``.
    """
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return "***"
    shown = local[0] if len(local) > 1 else ""
    return f"{shown}***@{domain}"


# anything address-shaped in free text, any script (possessive: linear time on any input)
_ADDRESS_IN_TEXT = re.compile(
    r"(?<![^\s<>\"'(),;:@])([^\s<>\"'(),;:@])[^\s<>\"'(),;:@]*+@([^\s<>\"'(),;:@]+)"
)


def mask_addresses(text: str) -> str:
    """Every address in ``text`` masked like `mask_email` (``t***@example.jp``): the last
    safety net of the log renderers and of error texts that may quote an address."""
    return _ADDRESS_IN_TEXT.sub(r"\1***@\2", text)
