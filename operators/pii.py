"""Find and mask personal data in text: card numbers, SSNs, e-mail addresses,
phone numbers, account numbers and PINs.

The policy names the kinds to mask. Text is scanned after NFKC normalisation
(the contracts already apply it) with every Unicode digit read as its ASCII
value, so full-width or Arabic-Indic digits, spaced-out digits and dashes do
not hide a number. Each finding is replaced by a marker such as
``[CARD_NUMBER]``; the caller learns which kinds it masked.

Kinds, in the order they are tried:
- ``email``: ``name@host.tld``, also written ``name at host dot com`` or ``[at]``.
- ``card_number``: 13-19 digits (spaces, dashes, dots between them) passing Luhn.
- ``ssn``: ``123-45-6789`` (or spaced), or nine digits near "ssn"/"social security".
- ``phone``: ``+1 (555) 123-4567``, ``555.123.4567``, ``5551234567``, ``+44 20 7946 0958``.
- ``pin``: 3-8 digits after "pin", "passcode", "security code", "cvv" or "code".
- ``account_number``: any other run of ``min_digits`` (default 4) or more digits:
  account numbers, member ids and PINs given without a keyword all look like this.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

KINDS = ("email", "card_number", "ssn", "phone", "pin", "account_number")

# Every Unicode decimal digit -> its ASCII digit (NFKC leaves Arabic-Indic,
# Devanagari ... digits alone).
_DIGITS = {
    cp: str(unicodedata.digit(chr(cp)))
    for cp in range(sys.maxunicode + 1)
    if unicodedata.category(chr(cp)) == "Nd" and not chr(cp).isascii()
}

_SEP = r"[ \t\-.\u00a0]"
# Every repeat in the e-mail patterns is bounded: an unbounded run followed by a part that can
# fail is retried from each position of the run, quadratic in the text (a minute for one 64 KiB
# record). The bounds are the address's own (RFC 5321: a local part of at most 64 characters,
# labels of at most 63, a host of at most 253).
_LOCAL = r"[^\s@<>()\[\]{},;:\"']{1,64}"
_HOST = r"[^\s@<>()\[\]{},;:\"']{1,253}"
_LABEL = r"[^\s@<>()\[\]{},;:\"'.]{1,63}"
_EMAIL = re.compile(
    rf"{_LOCAL}\s{{0,4}}(?:@|\[at\]|\(at\)|\{{at\}}|\s{{1,4}}at\s{{1,4}})\s{{0,4}}"
    rf"{_HOST}(?:\s{{0,4}}(?:\.|\[dot\]|\(dot\)|\s{{1,4}}dot\s{{1,4}})\s{{0,4}}{_LABEL})+",
    re.IGNORECASE,
)
_SPOKEN_EMAIL = re.compile(
    r"\b[\w.+-]{1,64}(?:\s{1,4}dot\s{1,4}[\w+-]{1,64}){0,8}\s{1,4}at\s{1,4}[\w-]{1,63}"
    r"(?:\s{1,4}dot\s{1,4}[\w-]{1,63}){1,8}\b",
    re.IGNORECASE,
)
_PLAIN_EMAIL = re.compile(r"@|\[at\]|\(at\)|\{at\}|\bat\b.{0,80}?\bdot\b", re.IGNORECASE)
_DIGIT_RUN = re.compile(rf"(?<![\d+])\+?\d(?:{_SEP}*\d)*(?!\d)")
_SSN_SHAPE = re.compile(r"^\d{3}[ \-.]\d{2}[ \-.]\d{4}$")
_SSN_CONTEXT = re.compile(r"\b(?:ssn|social\s*security|social)\b", re.IGNORECASE)
_PIN_CONTEXT = re.compile(
    r"\b(?:pin|pin\s*(?:number|code)|passcode|pass\s*code|security\s*code|cvv|cvc|code)\b\D{0,20}$",
    re.IGNORECASE,
)
_PHONE_SHAPE = re.compile(
    r"^(?:\+?\d{1,3}[ \-.]?)?(?:\(?\d{3}\)?[ \-.]?)\d{3}[ \-.]?\d{4}$|^\+\d[\d \-.]{7,16}\d$"
)
_PAREN_PHONE = re.compile(r"(?<!\d)(?:\+?\d{1,3}\s*)?\(\d{3}\)\s*\d{3}[ \-.]?\d{4}(?!\d)")
#: ``_DIGIT_RUN`` and ``_PAREN_PHONE`` each need a ``\d``: a text without one has nothing for them.
_ANY_DIGIT = re.compile(r"\d")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


@dataclass(frozen=True)
class Redactor:
    """Masks the configured kinds of personal data."""

    kinds: frozenset[str] = frozenset(KINDS)
    min_digits: int = 4
    """Digit runs this long or longer are masked as ``account_number``."""

    def redact(self, text: str) -> tuple[str, list[str]]:
        """The text with personal data masked, and the kinds masked (in order found)."""
        if not text:
            return text, []
        if not text.isascii():
            text = text.translate(_DIGITS)
        found: list[str] = []
        if "email" in self.kinds and _PLAIN_EMAIL.search(text):
            text, n = _SPOKEN_EMAIL.subn("[EMAIL]", text)
            found += ["email"] * n
            text, n = _EMAIL.subn("[EMAIL]", text)
            found += ["email"] * n
        if _ANY_DIGIT.search(text):
            if "phone" in self.kinds:
                text, n = _PAREN_PHONE.subn("[PHONE]", text)
                found += ["phone"] * n
            text = _DIGIT_RUN.sub(lambda m: self._number(m, text, found), text)
        return text, found

    def _number(self, match: re.Match, text: str, found: list[str]) -> str:
        run = match.group(0)
        digits = re.sub(r"\D", "", run)
        n = len(digits)
        before = text[max(0, match.start() - 40) : match.start()]
        kinds = self.kinds
        if "card_number" in kinds and 13 <= n <= 19 and luhn_valid(digits):
            kind = "card_number"
        elif "ssn" in kinds and n == 9 and (_SSN_SHAPE.match(run) or _SSN_CONTEXT.search(before)):
            kind = "ssn"
        elif "phone" in kinds and 10 <= n <= 15 and _PHONE_SHAPE.match(run.strip()):
            kind = "phone"
        elif "pin" in kinds and 3 <= n <= 8 and _PIN_CONTEXT.search(before):
            kind = "pin"
        elif "account_number" in kinds and n >= self.min_digits:
            kind = "account_number"
        else:
            return run
        found.append(kind)
        return f"[{kind.upper()}]"

    def redact_all(self, texts: Iterable[str]) -> tuple[list[str], list[str]]:
        out, found = [], []
        for text in texts:
            clean, kinds = self.redact(text)
            out.append(clean)
            found += kinds
        return out, found
