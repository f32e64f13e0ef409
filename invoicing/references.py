"""An invoice's payment reference: the ISO 11649 structured creditor reference ("RF" + two
ISO 7064 mod 97-10 check digits + the invoice number's letters and digits, `RF47ENIS2024000123`).

It is printed on the invoice (invoicing/service.py) and matched on bank statements (payments/),
so it lives with the invoice: payments imports invoicing, never the other way round."""

from __future__ import annotations

import re

from stdnum import iso11649
from stdnum.iso7064 import mod_97_10


def wire_reference(invoice_number: str) -> str:
    """The RF creditor reference of an invoice number, compact (`RF47ENIS2024000123`)."""
    body = re.sub(r"[^0-9A-Z]", "", invoice_number.upper())
    if not 1 <= len(body) <= 21:
        raise ValueError(f"invoice number {invoice_number!r} does not fit an RF reference (1-21 characters)")
    # ISO 11649: the check digits make "<body>RF<check>" congruent to 1 mod 97.
    return iso11649.validate(f"RF{mod_97_10.calc_check_digits(body + 'RF')}{body}")
