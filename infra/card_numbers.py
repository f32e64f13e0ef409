"""Card numbers in free text: found (a Luhn-valid run of 13-19 digits, single spaces or dashes
between them, not inside a longer run or a word) and masked. Pure.

Free text (a tenant's name, a credit note's reason, a refund's) is refused at the API when it
holds one (serve/free_text.py); the audit log masks any that reach it by another way, so card data
is never stored in clear (PCI DSS 3.3/3.4; issue 15).
"""

from __future__ import annotations

import re

# A whole run: not preceded by a letter, a digit or "digit + separator", nor followed by them,
# so ids such as UUIDs (digit groups between letters) and longer numbers (IBANs) are not cut.
_RUN = re.compile(r"(?<![0-9A-Za-z])(?<![0-9][ -])(?:[0-9][ -]?){12,18}[0-9](?![0-9A-Za-z])(?![ -][0-9])")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (ISO/IEC 7812-1)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def card_numbers(text: str) -> list[str]:
    """Every card-number-like run in `text`, as written."""
    found = []
    for match in _RUN.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(match.group())
    return found


def mask(text: str) -> str:
    """`text` with each card number's digits but the last four replaced by '*'."""
    if _RUN.search(text) is None:  # most texts: one scan in C (the audit log masks every text)
        return text

    def hide(match: re.Match[str]) -> str:
        run = match.group()
        digits = re.sub(r"[ -]", "", run)
        if not (13 <= len(digits) <= 19 and luhn_valid(digits)):
            return run
        keep = len(digits) - 4
        out, seen = [], 0
        for char in run:
            if char.isdigit():
                out.append("*" if seen < keep else char)
                seen += 1
            else:
                out.append(char)
        return "".join(out)

    return _RUN.sub(hide, text)
