"""Find and mask personal data in text, typed or transcribed from voice.

The policy names the kinds to mask. Text is scanned after NFKC normalisation
(the contracts already apply it) with every Unicode digit read as its ASCII
value, so full-width or Arabic-Indic digits, spaced-out digits and dashes do
not hide a number; digits spoken as words ("four one one one", "oh", "double
seven", "nineteen eighty") are read as digits too. Each finding is replaced
by a marker naming its kind, such as ``[CARD_NUMBER]``; the caller learns
which kinds it masked.

Kinds, in the order they are tried:
- ``email``: ``name@host.tld``, also spelled ``name dot last at host dot com``, ``[at]``, "at the rate".
- ``credential``: the value after password, passcode, username, security answer,
  memorable word, mother's maiden name ...; every one of a sentence, in any order.
- ``iban``: an IBAN whose check digits hold (``GB82 WEST 1234 5698 7654 32``), typed or spelled.
- ``national_id``, ``passport``, ``driving_licence``, ``tax_id``, ``bank_code``, ``licence_plate``,
  ``cvv``: the value after the words that name it ("national insurance number", "passport no.",
  "sort code", "SWIFT", "licence plate", "CVV" ...), letters included; a UK National Insurance
  number or number plate by its shape alone.
- ``card_expiry``: the month and year after "exp", "expires", "valid thru".
- ``ip_address``: an IPv4 or IPv6 address (python's ``ipaddress`` checks the IPv6 ones).
- ``date_of_birth``: a date, numeric or spelled ("the third of May 1980"),
  after "born", "birth", "DOB" or "birthday", or a full date whose year is a birth year.
- ``age`` (strict): "67 years old", "aged 58", "my age is 34".
- ``address`` (strict): a street line ("221B Baker Street", "1600 Pennsylvania
  Avenue NW"), a UK or Canadian postcode, a US ZIP after a state, a PO box, a flat or
  apartment number, what follows "my address is" or "I live on".
- ``card_number``: 13-19 digits passing Luhn.
- ``ssn``: ``123-45-6789`` (or spaced), or nine digits near "ssn"/"social security".
- ``phone``: ``+1 (555) 123-4567``, ``555.123.4567``, ``+44 20 7946 0958``, or a number
  ``phonenumbers`` finds valid in the US or the UK.
- ``pin``: 3-8 digits after "pin", "passcode", "security code" or "code".
- ``account_number``: any other run of ``min_digits`` (default 4) or more digits,
  or of 4 or more after "account", "member", "reference" ...
- ``person`` (strict): the name after "my name is", "call me", "surname is", a title
  (Mr, Mrs, Ms, Miss), or a capitalised name after "I'm", "this is"; spelled-out letters after
  those; with ``uncued``, also a name from ``operators.names`` with no cue at all.

``FAST_KINDS`` cost a few microseconds on a turn: they run at parse, before the
model. ``STRICT_KINDS`` add ages, people and addresses: they run where text leaves
the job (``operators.privacy``). docs/privacy.md says what each misses.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import phonenumbers
from stdnum import iban as _iban

from operators.names import names
from schemas.policy import FAST_PII_KINDS, PII_KINDS


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


def _tokens(words: str) -> frozenset[str]:
    """``words`` as whitespace tokens of lower-cased text hold them: bare, or with the punctuation after."""
    return frozenset(w + end for w in words.split() for end in ("", ":", ",", ".", "#", "?"))


#: The contract's kinds (``schemas.policy``): what ``FAST`` masks, and every kind.
FAST_KINDS = FAST_PII_KINDS
STRICT_KINDS = PII_KINDS
#: Kinds a listed kind brings: values it would mask anyway (runs of digits, a security code) named
#: precisely (``[BANK_CODE]``, not ``[ACCOUNT_NUMBER]``), and what goes with it (a card's expiry).
BROUGHT = {
    "account_number": (
        "iban",
        "date_of_birth",
        "national_id",
        "passport",
        "driving_licence",
        "tax_id",
        "bank_code",
        "ip_address",
    ),
    "pin": ("cvv",),
    "card_number": ("card_expiry",),
}

# Every Unicode decimal digit -> its ASCII digit (NFKC leaves Arabic-Indic,
# Devanagari ... digits alone).
_DIGITS = {
    cp: str(unicodedata.digit(chr(cp)))
    for cp in range(sys.maxunicode + 1)
    if unicodedata.category(chr(cp)) == "Nd" and not chr(cp).isascii()
}

# -- e-mail --------------------------------------------------------------------------------------
_SEP = r"[ \t\-.\u00a0]"
# Every repeat in the e-mail patterns is bounded and none can split a run two ways: an unbounded
# run followed by a part that can fail is retried from each position of the run (quadratic in the
# text), and two ways to split one (``[\w-]+(?:-[\w-]+)*``) are tried in every combination. The
# bounds are an address's own (RFC 5321: a local part of at most 64 characters, labels of at most
# 63), with at most 8 labels and 16 spoken parts.
_LABEL = r"[^\s@<>()\[\]{},;:\"'.]{1,63}+"
_DOT = r"(?:\.|\s{0,4}(?:\[dot\]|\(dot\))\s{0,4}|\s{1,4}dot\s{1,4})"
_EMAIL = re.compile(
    r"[^\s@<>()\[\]{},;:\"']{1,64}+\s{0,4}(?:@|\[at\]|\(at\)|\{at\}|\s{1,4}at\s{1,4})"
    rf"\s{{0,4}}{_LABEL}(?:{_DOT}{_LABEL}){{0,8}}{_DOT}[^\W\d_]{{2,24}}\b",
    re.IGNORECASE,
)
# A spelled address: words joined by "dot", "underscore", "dash" or "." before " at ", and a host
# of words joined by "dot" or "." after it ("john dot smith at gmail.com"); letters spelled one by one
# ("j o h n at ..."), numbers spoken ("katie ninety one at ..."), "at the rate" (Indian English).
_JOIN = r"(?:\s{1,4}(?:dot|underscore|dash|hyphen|plus)\s{1,4}|[._+-]{1,3}+)"
_DIGIT_WORD = (
    r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen"
    r"|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
)
_SPOKEN_AT = r"\s{1,4}(?:at\s{1,4}the\s{1,4}rate(?:\s{1,4}of)?|at(?:\s{1,4}(?:sign|symbol))?)\s{1,4}"
#: Not "point": "at one point or another".
_SPOKEN_DOT = r"(?:\s{1,4}(?:dot|period|full\s{1,4}stop)\s{1,4}|\.)"
_PART = r"[^\W_]{1,64}+"  # letters and digits: the joins hold the rest, so a run splits one way only
_HOST_PART = r"[^\W_]{1,63}+(?:-[^\W_]{1,63}+){0,4}"
_SPOKEN_EMAIL = re.compile(
    rf"(?:\b[a-z](?:\s{{1,4}}[a-z]){{1,24}}\s{{1,4}}(?=[a-z]{_SPOKEN_AT}))?"
    rf"(?<![\w+-])[+-]{{0,2}}{_PART}(?:(?:{_JOIN}|\s{{1,4}}(?={_DIGIT_WORD}\b)){_PART}){{0,16}}[+-]{{0,2}}"
    rf"{_SPOKEN_AT}{_HOST_PART}(?:{_SPOKEN_DOT}{_HOST_PART}){{0,8}}{_SPOKEN_DOT}"
    r"[^\W\d_]{2,24}\b",
    re.IGNORECASE,
)
# "john @ gmail . com": a typed address with spaces around its @ and dots.
_SPACED_EMAIL = re.compile(
    r"[\w.+-]{1,64}+\s{1,4}@\s{1,4}[\w-]{1,63}+(?:\s{1,4}\.\s{1,4}[\w-]{1,63}+){0,8}\s{1,4}\.\s{1,4}"
    r"[^\W\d_]{2,24}\b"
)

# -- digits, typed and spoken ----------------------------------------------------------------------
_DIGIT_RUN = re.compile(rf"(?<![\d+])\+?\d(?:{_SEP}*\d)*(?!\d)")
_SSN_SHAPE = re.compile(r"^\d{3}[ \-.]\d{2}[ \-.]\d{4}$")
_PHONE_SHAPE = re.compile(
    r"^(?:\+?\d{1,3}[ \-.]?)?(?:\(?\d{3}\)?[ \-.]?)\d{3}[ \-.]?\d{4}$|^\+\d[\d \-.]{7,16}\d$"
)
_PAREN_PHONE = re.compile(r"(?<!\d)(?:\+?\d{1,3}\s*)?\(\d{3}\)\s*\d{3}[ \-.]?\d{4}(?!\d)")
#: ``_DIGIT_RUN`` and ``_PAREN_PHONE`` each need a ``\d``: a text without one has nothing for them.
_ANY_DIGIT = re.compile(r"\d")
_NON_DIGIT = re.compile(r"\D")
_DATE_PART = re.compile(r"^(?:\d{1,2}[-./]\d{1,2}[-./](?:\d{4}|\d{2})|\d{4}[-./]\d{1,2}[-./]\d{1,2})$")

# The keyword nearest before a number says what it is ("my account number, not my phone: 1234").
# The government ids, bank codes and card codes come first: "social insurance" is not "social".
# Searched in lower-cased text (IGNORECASE would cost twice as much per number).
_CONTEXT = re.compile(
    r"\b(?:(?P<national_id>national\s+insurance|social\s+insurance|nhs|medicare|aadhaa?r|national\s+id"
    r"|id\s+(?:card|number)|identity\s+(?:card|number)|health\s+(?:card|insurance))"
    r"|(?P<passport>passport)"
    r"|(?P<driving_licence>driver'?s'?\s+licen[cs]e|driving\s+licen[cs]e|licen[cs]e\s+(?:number|no))"
    r"|(?P<tax_id>tax\s*(?:payer\s*)?(?:id|identification|reference|file|code|number)|itin|ein|utr|tfn)"
    r"|(?P<bank_code>sort\s*code|routing|aba|bsb|transit\s+number|bank\s+code)"
    r"|(?P<cvv>cvv2?|cvc2?|cv2|card\s+security\s+code|security\s+code\s+on\s+the\s+back|digits\s+on\s+the\s+back"
    r"|(?:three|3|four|4)[\s-]+digit\s+(?:security\s+)?(?:code|number))"
    r"|(?P<ssn>ssn|social\s*security|social)"
    r"|(?P<pin>pin|pin\s*(?:number|code)|passcode|pass\s*code|security\s*code|code)"
    r"|(?P<date_of_birth>born|birth|dob|d\.o\.b|birthday)"
    r"|(?P<phone>phone|mobile|cell|cellphone|telephone|tel|landline|fax|call\s+me|ring\s+me|text\s+me"
    r"|reach\s+me|contact\s+me|(?:my|contact|home|work|mobile|callback|call-back)\s+number)"
    r"|(?P<account_number>account|acct|a/c|member(?:ship)?|customer\s+(?:number|id)|policy\s+number"
    r"|reference|ref|iban|card)"
    r"|(?P<postcode>zip(?:\s*code)?|postal\s*code|post\s*code))\b",
)
#: Context kinds that name a number whatever its shape (a passport number may pass Luhn).
_ID_CONTEXTS = frozenset(("national_id", "passport", "driving_licence", "tax_id", "bank_code"))
_ID_DIGITS = 5
_CVV_DIGITS = range(3, 5)
_CONTEXT_CHARS = 40
_CARD_DIGITS = range(13, 20)
_SSN_DIGITS = 9
_DATE_DIGITS = (6, 8)  # ddmmyy, ddmmyyyy (or month first)
_PHONE_DIGITS = range(10, 16)
_PIN_DIGITS = range(3, 9)
_KEYWORD_ACCOUNT_DIGITS = 4

_UNIT = {
    "zero": "0", "oh": "0", "o": "0", "nought": "0", "naught": "0", "one": "1", "two": "2", "three": "3",
    "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "niner": "9",
}
_TEEN = {
    "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14", "fifteen": "15",
    "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
}
_TENS = {
    "twenty": "2", "thirty": "3", "forty": "4", "fourty": "4", "fifty": "5", "sixty": "6", "seventy": "7",
    "eighty": "8", "ninety": "9",
}
_U = "|".join(sorted(_UNIT, key=len, reverse=True))
_UNZ = "one|two|three|four|five|six|seven|eight|nine"
_TOKEN = (
    rf"(?:(?:double|triple)[\s-]+(?:{_U})|(?:{'|'.join(_TENS)})(?:[\s-]+(?:{_UNZ}))?|{'|'.join(_TEEN)}"
    rf"|{_U}|\d+)"
)
_SPOKEN_RUN = re.compile(rf"\b{_TOKEN}(?:[\s,.\-]+{_TOKEN})*\b", re.IGNORECASE)
_SPOKEN_WORDS = frozenset((*_UNIT, *_TEEN, *_TENS, "double", "triple"))
_AT_BRACKET = re.compile(r"[\[({]at[\])}]")
_AT_DOMAIN = re.compile(r"\bat\b[^\n]{0,64}?(?:\b(?:dot|period|full\s+stop)\b|\.[^\W\d_]{2}|\s\.\s)")
_WORDY_KINDS = frozenset(("credential", "address", "person"))
_SPOKEN_TOKEN = re.compile(_TOKEN, re.IGNORECASE)
_WORD_DIGIT = re.compile(r"[a-z]", re.IGNORECASE)

# -- dates of birth --------------------------------------------------------------------------------
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|march|mar|april|apr|may|june|jun|july|jul|aug(?:ust)?"
    r"|sept(?:ember)?|sep|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_ORDINAL_WORDS = (
    "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth"
    "|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|thirtieth"
)
_ORD = (
    rf"(?:\d{{1,2}}(?:st|nd|rd|th)?|(?:twenty|thirty)[\s-]+(?:first|second|third|fourth|fifth|sixth"
    rf"|seventh|eighth|ninth)|{_ORDINAL_WORDS})"
)
_SPOKEN_YEAR = (
    rf"(?:(?:nineteen|twenty)[\s-]+(?:(?:{'|'.join(_TENS)})(?:[\s-]+(?:{_UNZ}))?|{'|'.join(_TEEN)}"
    rf"|(?:oh|o)[\s-]+(?:{_UNZ})|hundred)|two\s+thousand(?:\s+and)?(?:[\s-]+(?:{'|'.join(_TEEN)}"
    rf"|(?:{'|'.join(_TENS)})(?:[\s-]+(?:{_UNZ}))?|{_UNZ}))?)"
)
_YEAR = rf"(?:\d{{4}}|'\d{{2}}|{_SPOKEN_YEAR})"
_DATE = re.compile(
    r"(?<![\w/.-])(?:(?P<num>\d{1,2}(?P<s1>[/.\-])\d{1,2}(?P=s1)(?:\d{4}|\d{2})|\d{4}(?P<s2>[/.\-])\d{1,2}(?P=s2)\d{1,2})"
    rf"|(?P<dm>(?:the\s+)?{_ORD}\s+(?:of\s+)?{_MONTH}(?:,?\s+(?:of\s+)?{_YEAR})?)"
    rf"|(?P<dmy>\d{{1,2}}-{_MONTH}-(?:\d{{4}}|\d{{2}}))"
    rf"|(?P<md>{_MONTH}\s+(?:the\s+)?{_ORD}(?:,?\s+{_YEAR})?)"
    rf"|(?P<my>{_MONTH},?\s+(?:of\s+)?{_YEAR}))"
    r"(?![\w/\-]|\.\d)",
    re.IGNORECASE,
)
_NUMERIC_DATE = re.compile(r"\d[/.\-]\d")
# What a date of birth needs near it, looked for in the lower-cased text (cheap: no IGNORECASE).
_DOB_HINT = re.compile(r"born|birth|dob|d\.o\.b")
_MONTH_HINT = re.compile(r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec")
_DOB_CONTEXT = re.compile(r"\b(?:born|birth|dob|d\.o\.b|birthday|b-day)\b", re.IGNORECASE)
_YEAR_DIGITS = re.compile(r"\d{4}|(?<=')\d{2}")
_THIS_YEAR = date.today().year
_OLDEST_BIRTH_YEAR = 1900
_YOUNGEST_AGE = 10
_DATE_SEPARATOR = re.compile(r"[/.\-]")
_SPOKEN_CENTURY = re.compile(r"\b(nineteen|twenty|two\s+thousand)\b(.*)$", re.IGNORECASE)
# A year of birth on its own: "born in 1962", "year of birth: nineteen sixty two".
_BIRTH_YEAR = re.compile(
    rf"\b(?:born\s+in(?:\s+the\s+year)?|year\s+of\s+birth(?:\s+is)?|birth\s+year(?:\s+is)?|yob)\s*:?\s+"
    rf"(?P<year>(?:19|20)\d{{2}}|{_SPOKEN_YEAR})\b",
    re.IGNORECASE,
)

# -- IBAN ------------------------------------------------------------------------------------------
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ \-]?[A-Z0-9]){11,30}\b", re.IGNORECASE)
_IBAN_GATE = re.compile(r"[A-Za-z]{2}\s*\d{2}")
_IBAN_CHARS = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}")  # 15 to 34 characters
_IBAN_LETTERS = {ord(c): str(ord(c) - 55) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}  # A=10 ... Z=35

# -- government ids, bank codes, number plates, card codes -------------------------------------------
# The words that name a value, by the kind they name. Order matters where one contains another:
# "licence plate" before "licence", "security code on the back" (a CVV) before the PIN's "security code".
_ID_CUES = (
    (
        "licence_plate",
        r"licen[cs]e\s+plates?|number\s+plates?|plate\s+(?:number|no)|plates?"
        r"|(?:vehicle\s+|car\s+)?registration(?:\s+(?:number|plate|mark))?|reg\s+(?:number|no|plate)",
    ),
    (
        "driving_licence",
        r"driver'?s'?\s+licen[cs]e|drivers\s+licen[cs]e|driving\s+licen[cs]e|(?-i:DL)|licen[cs]e",
    ),
    ("passport", r"passport"),
    (
        "national_id",
        r"national\s+insurance|(?-i:NI|NINO)|nino|nhs|medicare|social\s+insurance|(?-i:SIN)"
        r"|sin\s+(?:number|no)|aadhaa?r|national\s+id(?:entity)?|identity\s+(?:card|number|document)"
        r"|(?-i:ID)\s+(?:card|number|no)|id\s+(?:card|number)|health\s+(?:card|insurance)|(?-i:PPS|BSN)",
    ),
    (
        "tax_id",
        r"tax\s*(?:payer\s*)?(?:id|identification|reference|file|code|number)|(?-i:TIN|ITIN|EIN|UTR|TFN|PAN)"
        r"|itin|utr|tfn|pan\s+(?:card|number)",
    ),
    (
        "bank_code",
        r"sort\s*code|routing|(?-i:ABA|BSB|BIC|IFSC)|aba\s+number|bsb|swift(?:\s*/\s*bic)?|bic\s+code"
        r"|transit\s+number|bank\s+code|ifsc",
    ),
    (
        "cvv",
        r"cvv2?|cvc2?|cv2|card\s+security\s+code|security\s+code\s+on\s+the\s+back(?:\s+of\s+the\s+card)?"
        r"|(?:three|3|four|4)[\s-]+digit\s+(?:security\s+)?(?:code|number)|digits\s+on\s+the\s+back(?:\s+of\s+the\s+card)?",
    ),
)
# A value: typed groups with a digit ("D1234567", "S530-4607"), capital letter groups ("QQ", "CDE"),
# single letters spelled out, spoken digits, or a BIC ("DEUTDEFF").
_ID_TOKEN = (
    rf"(?:[a-z]*\d[a-z0-9]*|(?-i:[A-Z]{{6}}[A-Z0-9]{{2}}(?:[A-Z0-9]{{3}})?)(?![\w'’])|(?-i:[A-Z]{{1,4}})(?![\w'’])"
    rf"|{_TOKEN}(?![\w'’])|[a-z](?![\w'’]))"
)
_ID_VALUE = re.compile(
    r"\b(?:" + "|".join(f"(?P<{kind}>{cue})" for kind, cue in _ID_CUES) + r")(?![\w'’])"
    r"(?:\s+(?:number|no\.?|num|nr|code|card|mark|is|was|are|reads|says|it's|it’s|should\s+be|would\s+be|of"
    r"|on|the|my))*\s*[:#=\-]?\s*"
    rf"(?P<value>{_ID_TOKEN}(?:(?:[ \t./\-]+|,\s*(?=[a-z]))(?:{_ID_TOKEN}))*)",
    re.IGNORECASE,
)
#: The first words of the cues, as whitespace tokens may hold them ("passport:"): a set lookup per
#: token decides whether the (costly) cue pattern runs at all.
_ID_WORDS = _tokens("""
licence license plate plates registration reg driver's drivers driver’s driving dl passport national ni nino
nhs medicare social sin aadhaar aadhar identity id health pps bsn tax taxpayer tin itin ein utr tfn pan sort
sortcode routing aba bsb bic ifsc swift transit bank cvv cvv2 cvc cvc2 cv2 security digit digits
""")
_LETTER_DIGIT = re.compile(r"[A-Za-z]-?\d|\d-?[A-Za-z]")
#: Fewest digits each kind's value has (a BIC has none; its shape is checked instead).
_ID_MIN_DIGITS = {"licence_plate": 1, "driving_licence": 5, "passport": 5, "national_id": 6, "tax_id": 4,
                  "bank_code": 6, "cvv": 3}
_BIC = re.compile(r"(?-i:[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?)")
# A UK National Insurance number and a UK number plate have shapes nothing else has (capitals only).
# (Looser than HMRC's rules for its letters: its specimen "QQ 12 34 56 C" breaks them.)
_NINO = re.compile(r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_UK_PLATE = re.compile(r"\b[A-HJ-PR-Y]{2}\d{2} ?[A-HJ-PR-Z]{3}\b")

# -- card expiry -------------------------------------------------------------------------------------
_EXPIRY = re.compile(
    r"\b(?:exp(?:iry|iration|ires|ired|iring)?|valid\s+(?:thru|through|until|till|to)|good\s+(?:thru|through))\b"
    r"\.?(?:\s+(?:date|on|in|is|at|the|end|of))*\s*[:\-]?\s*"
    rf"(?P<value>(?P<numeric>\d{{1,2}}\s*[/\-.]\s*(?:\d{{4}}|\d{{2}})|\d{{4}}\s*[/\-]\s*\d{{1,2}})(?!\d)"
    rf"|{_MONTH}\.?,?\s+(?:of\s+)?(?:\d{{4}}|'?\d{{2}}|{_SPOKEN_YEAR})\b"
    rf"|(?P<spoken>{_TOKEN}(?:[\s,/\-]+{_TOKEN}){{0,3}})\b)",
    re.IGNORECASE,
)
_EXPIRY_WORDS = _tokens("exp exp. expiry expires expiration expired expiring valid thru")
_MONTHS = range(1, 13)

# -- IP addresses ------------------------------------------------------------------------------------
_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\w|\.\d)"
)
_IPV6 = re.compile(
    r"(?<![\w:.])(?=[0-9a-f:]*::|(?:[0-9a-f]{1,4}:){7})[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?![\w:])",
    re.IGNORECASE,
)
_IP_GATE = re.compile(r"\d\.\d+\.\d")
_IP_CUE = re.compile(r"\b(?:ip|ipv[46]|ip\s+address)\b", re.IGNORECASE)
_HEX = re.compile(r"[0-9a-f]", re.IGNORECASE)

# -- ages --------------------------------------------------------------------------------------------
_AGE_NUMBER = rf"(?:1[01]\d|\d{{1,2}}|(?:{'|'.join(_TENS)})(?:[\s-]+(?:{_UNZ}))?|{'|'.join(_TEEN)}|{_UNZ})"
_AGE = re.compile(
    rf"\b(?P<before>{_AGE_NUMBER})[\s-]*(?:years?|yrs?)[\s-]*(?:old|of\s+age)\b"
    rf"|\b(?:aged|age(?:\s+is)?\s*:?|my\s+age\s+is|i\s+turned|i'?m\s+turning)\s+(?P<after>{_AGE_NUMBER})\b",
    re.IGNORECASE,
)
_AGE_HINT = re.compile(r"year|yrs|age|turn")

# -- letters and digits spelled one by one -----------------------------------------------------------
# (A quote before or after a run is no apostrophe: "to 'n w one six x e'" is a run, "it's" is not.)
# "G B eight two W E S T one two ...", "q q one two three four five six c", "n w one six x e": runs of
# single letters, capital groups, spoken and typed digits, read as one code and checked as an IBAN, a
# National Insurance number, a UK postcode or a number plate.
_SPELL_TOKEN = (
    rf"(?:{_TOKEN}(?!\w|['’]\w)|[a-z](?!\w|['’]\w)|(?-i:[A-Z]{{2,4}})(?!\w|['’]\w)|[a-z]{{2,4}}(?=[\s,\-]+(?:{_TOKEN})\b))"
)
_SPELL_RUN = re.compile(rf"(?<!\w)(?<!\w['’]){_SPELL_TOKEN}(?:[\s,\-]+{_SPELL_TOKEN})+", re.IGNORECASE)
_SPELLED_SHAPES = (
    ("national_id", re.compile(r"(?!BG|GB|KN|NK|NT|TN|ZZ)[A-Z]{2}\d{6}[A-D]")),
    ("licence_plate", re.compile(r"[A-HJ-PR-Y]{2}\d{2}[A-HJ-PR-Z]{3}")),
    ("address", re.compile(r"(?:[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]?|GIR)\d[ABD-HJLNP-UW-Z]{2}")),
)
_SPELL_MIN_TOKENS = 4

# -- credentials -----------------------------------------------------------------------------------
_CRED_KEY = (
    r"(?:pass\s*(?:word|phrase)|pwd|pw(?=\s*[:=])|pass(?=\s*[:=])|user\s*(?:name|id)|user(?=\s*[:=])"
    r"|login(?:\s+(?:name|id))?|log-in"
    r"|security\s+(?:answer|word|question\s+answer)|answer\s+to\s+(?:my|the)\s+security\s+question"
    r"|memorable\s+(?:word|name|place|date|information)|secret\s+(?:word|answer|question\s+answer)"
    r"|(?:mother|mum|mom)'?s\s+maiden\s+name|maiden\s+name|(?:first\s+|childhood\s+)?pet'?s\s+name"
    r"|name\s+of\s+(?:my|the)\s+(?:first\s+|childhood\s+)?pet|(?:first|childhood)\s+pet(?!['’]|s\b)|passcode"
    r"|pass\s*code)\b"
)
_CRED_VALUE = r"[^\s,;:\"'“”‘’()\[\].!?][^\s,;:\"'“”‘’()\[\]]*"
_CREDENTIAL = re.compile(
    rf"\b(?P<key>{_CRED_KEY})(?P<link>(?:\s+(?:for|on)\s+(?:my|the|your)\s+\w+)?"
    r"(?:\s*\?\s*(?:it's|it’s|it\s+is|that's|that\s+is))?"
    r"(?:\s+(?:is|was|are|would\s+be|should\s+be|will\s+be|it's|it’s|its|of))?\s*[:=]?\s*)"
    rf"[\"'“‘]?(?P<value>{_CRED_VALUE}(?:\s+[^\s,;:\"'“”‘’()\[\].!?]+){{0,2}})",
    re.IGNORECASE,
)
# Two keys, then their two values: "the username and password are jsmith and hunter2".
_CRED_PAIR = re.compile(
    rf"\b{_CRED_KEY}\s*(?:,|and|&)\s*(?:(?:my|the|your)\s+)?{_CRED_KEY}\s+(?:are|were)\s*:?\s*"
    rf"(?P<first>{_CRED_VALUE}?)\s*,?\s+(?:and|&)\s+(?P<second>{_CRED_VALUE})",
    re.IGNORECASE,
)
_CRED_WORDS = _wordset(
    "password passwords passcode pass passphrase pwd pw username user userid login log security memorable"
    " secret maiden pet pets"
)
_SINGLE_VALUE_KEYS = re.compile(r"pass|pwd|pw|user|log", re.IGNORECASE)
_MIN_ANSWER_CHARS = 3

# Words that end a name or credential value: a value is never one of them.
_STOP = _wordset("""
a an the and or but so then than that this these those it its it's is are was were be been being am
i i'm im me my mine you your yours we our us he him his she her they them their there here
not no yes yeah yep ok okay sure please thanks thank sorry hi hello hey bye goodbye well just also too
very really still now today tomorrow tonight yesterday again already actually maybe only even
at in on of to for from with without by about as into onto over under after before since until
calling speaking looking trying going wanting needing hoping asking phoning ringing writing
what which who whom whose when where why how can could would should will shall may might must do does
did done have has had get got need needs want wants like would've wrong incorrect invalid expired locked
blocked forgotten forgot reset changed change correct right required needed missing same new old
working work lost stolen different empty blank unknown sent set same one name names
mr mrs ms miss mx sir madam dr doctor
""")

# -- people ----------------------------------------------------------------------------------------
_NAME_TOKEN = r"[^\W\d_][^\W\d_'’\-]*(?:['’\-][^\W\d_]+)*"
_STRONG_CUE = (
    r"(?:(?:my|his|her|their|our)\s+(?:(?:full|first|last|middle|given|family|sur|maiden|real|legal)\s*)?"
    r"name\s*(?:is|'s|’s|:|=)|(?<![\w'])name's|(?:first|last|middle|family|given|sur)\s*name(?:\s*(?:is|'s|’s|:))?"
    r"|(?:i\s+am|i'm|i’m|im)\s+called|mister|missus|mr\.?|mrs\.?|mx\.?|(?-i:Ms\.?|Miss)"
    r"|(?:account|card|policy)\s*holder(?:'s\s+name)?\s+is|name\s+on\s+the\s+(?:card|account)\s+is"
    r"|(?:booked|reserved|registered)\s+(?:in|under)\s+the\s+name(?:\s+of)?|in\s+the\s+name\s+of"
    r"|(?:my|his|her|their|our)\s+(?:husband|wife|partner|son|daughter|mother|father|mum|mom|dad|brother"
    r"|sister|child|kid|friend|boss|manager|carer|landlord|landlady)(?:'s|’s)\s+name\s+is)"
)
_WEAK_CUE = (
    r"(?:i\s+am|i'm|i’m|this\s+is|(?:hi|hello|hey|yes|yeah|yea|no),?\s+(?:it's|it’s|it\s+is)"
    r"|speaking\s+(?:with|to)|talking\s+to|call\s+me)"
)
_STRONG = re.compile(
    rf"\b{_STRONG_CUE}\s+(?P<name>{_NAME_TOKEN}(?:\s+{_NAME_TOKEN}){{0,2}})", re.IGNORECASE
)
_WEAK = re.compile(
    rf"\b{_WEAK_CUE}\s+(?P<name>[A-Z][^\W\d_'’\-]+(?:['’\-][^\W\d_]+)*"
    rf"(?:\s+[A-Z][^\W\d_'’\-]+(?:['’\-][^\W\d_]+)*){{0,2}})",
    re.IGNORECASE,
)
_SPEAKING = re.compile(
    r"\b(?P<name>[A-Z][^\W\d_]+(?:\s+[A-Z][^\W\d_]+)?)\s+(?:speaking|calling)\b(?!\s+(?:about|for|to|from|on))"
)
# Letters spelled out one by one after a cue: "S H E R L O C K", "h-o-l-m-e-s", "that's W, A, T".
_SPELLED = re.compile(
    r"\b(?:spelled|spelt|spelling|spell\s+it|that's|that\s+is|it's|name\s+is|name's|name\s*:)\s*:?\s*"
    r"(?P<name>(?:[a-z][\s.,\-]+){2,}[a-z])\b",
    re.IGNORECASE,
)
# What any person rule needs, looked for in the lower-cased text before the rules run.
_PERSON_HINT = re.compile(
    r"name|call|mist|miss|mr|ms\b|mx|i'm|i’m|i\s+am|\bim\b|this\s+is|it's|it’s|it\s+is|speaking|talking|holder"
    r"|spel|that's|that\s+is"
)
_PERSON_WORDS = _wordset(
    "name names call mister missus mr mrs ms miss mx i im am this speaking talking calling spelled spelt"
    " holder spell spelling hi hello hey surname that it"
)
# Capitalised words a weak cue is followed by that are not names.
_NOT_NAMES = _wordset("""
monday tuesday wednesday thursday friday saturday sunday january february march april may june july
august september october november december english american british canadian chief captain engineer
officer lieutenant commander sergeant admiral general manager member customer client guest owner
new old just from here there calling looking sure fine good great happy glad okay ok interested
available free busy unable able afraid aware wondering staying travelling traveling having hotel
restaurant apartment bank doctor dr mr mrs ms the a an
""")

# -- addresses -------------------------------------------------------------------------------------
_SUFFIX = (
    r"(?:street|st|road|rd|avenue|ave|lane|ln|drive|boulevard|blvd|close|crescent|court|place|square"
    r"|terrace|way|grove|gardens|mews|parkway|pkwy|highway|hwy|circle|trail|row|walk|hill|rise|green|park"
    r"|view|alley|broadway|plaza)"
)
_DIRECTION = r"(?:north|south|east|west|northeast|northwest|southeast|southwest|n|s|e|w|ne|nw|se|sw)\.?"
_STREET = re.compile(
    rf"(?<![$£€#\w])(?P<number>\d{{1,5}}[a-z]?|(?:{_U})(?:[ \t-]+(?:{_U})){{1,4}}"
    rf"|(?:{'|'.join(_TENS)})(?:[\s-]+(?:{_UNZ}))?|{'|'.join(_TEEN)})(?:,?[ \t]+|[ \t]*-[ \t]*)"
    rf"(?P<words>(?:[^\W\d_][\w'’\-]*[ \t]+){{1,3}}?)(?P<suffix>{_SUFFIX})\b\.?"
    rf"(?:[ \t]+{_DIRECTION}(?![\w']))?",
    re.IGNORECASE,
)
#: Street names spoken in lower case ("two two one b baker street") take only these suffixes.
_PLAIN_SUFFIXES = _wordset(
    "street st road rd avenue ave lane ln boulevard blvd drive crescent terrace parkway highway way place"
    " court close grove gardens mews square"
)
# A street named without a house number ("Rose Court", "Church Lane"): capitalised words and suffix.
_NAMED_STREET = re.compile(
    r"\b[A-Z][a-z'’\-]+(?:[ \t]+[A-Z][a-z'’\-]+){0,2}[ \t]+(?:"
    + "|".join(word.capitalize() for word in _SUFFIX[3:-1].split("|")) + r")\b"
)
# A flat, apartment, suite or unit number, a PO box: "flat 3b", "Apt. 12", "PO Box 4521".
_UNIT_NUMBER = re.compile(
    r"\b(?:flat|apartment|apt\.?|suite|unit)\s+#?\d{1,4}[a-z]?\b|\bp\.?\s?o\.?\s+box\s+\d{1,6}\b",
    re.IGNORECASE,
)
_CA_POSTCODE = re.compile(
    r"\b[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d\b", re.IGNORECASE
)
#: Words between a number and a suffix that make it a measure, not a street ("a 3 hour drive").
_MEASURES = _wordset("""
hour hours minute minutes min mins second seconds mile miles km kilometer kilometers kilometre kilometres
meter meters metre metres block blocks bedroom bedrooms bed beds bath baths room rooms people person persons
guest guests doctor doctors day days week weeks month months year years dollar dollars pound pounds buck bucks
transfer transfers star stars floor floors level levels story stories storey storeys car cars bus stop stops
square sq foot feet ft yard yards percent more other extra am pm noon midnight
""")
_UK_POSTCODE = re.compile(
    r"\b(?:[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]?|GIR)\s*\d[ABD-HJLNP-UW-Z]{2}\b", re.IGNORECASE
)
_US_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC"
    "|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|Alabama|Alaska|Arizona|Arkansas|California"
    "|Colorado|Connecticut|Delaware|Florida|Georgia|Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky"
    "|Louisiana|Maine|Maryland|Massachusetts|Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska"
    "|Nevada|New\\s+Hampshire|New\\s+Jersey|New\\s+Mexico|New\\s+York|North\\s+Carolina|North\\s+Dakota|Ohio"
    "|Oklahoma|Oregon|Pennsylvania|Rhode\\s+Island|South\\s+Carolina|South\\s+Dakota|Tennessee|Texas|Utah"
    "|Vermont|Virginia|Washington|West\\s+Virginia|Wisconsin|Wyoming"
)
_US_ZIP = re.compile(
    rf"(?:\b(?:{_US_STATES}),?\s+|\b(?i:zip|zip\s*code|postal\s*code|post\s*code)\s*(?i:is|:)?\s*)"
    r"\d{5}(?:-\d{4})?\b"
)
_ADDRESS_CUE = re.compile(
    r"\b(?:(?:my|our|his|her|the\s+(?:billing|delivery|shipping|home))\s+(?:home\s+|billing\s+|postal\s+"
    r"|mailing\s+|delivery\s+|shipping\s+)?address\s*(?:is|'s|’s|:)|(?:i|we)\s+live\s+(?:at|on|in)"
    r"|i\s+moved\s+to|we\s+moved\s+to|(?:send|deliver|post|mail)\s+it\s+to)\s+(?P<value>[^.;!?\n]{3,80})",
    re.IGNORECASE,
)
_ADDRESS_WORDS = frozenset(("address", "live", "moved", "it", *_UNIT, *_TEEN, *_TENS))
# Each address pattern's cheap precondition, looked for in the lower-cased text first.
_ADDRESS_CUE_HINT = re.compile(r"address|live at|live on|live in|moved to|it to")
_SUFFIX_HINT = re.compile(rf"\b{_SUFFIX}\b")
_POSTCODE_HINT = re.compile(r"[a-z]\d[a-z\d]?\s*\d[a-z]")
_ZIP_HINT = re.compile(r"\d{5}")
_UNIT_HINT = re.compile(r"flat|apartment|apt|suite|unit|box")
_CA_POSTCODE_HINT = re.compile(r"[a-z]\d[a-z] ?\d[a-z]\d")

_WORDS = re.compile(r"[a-z]+")
_MARKER = re.compile(r"\[[A-Z_]+\]")

_CLAUSE_END = re.compile(
    r"\s+(?:and|but|so|because|if|can|could|would|please|thanks|thank|where|which|since)\b", re.IGNORECASE
)

_CLASSIFIED = (
    "national_id", "passport", "driving_licence", "tax_id", "bank_code", "cvv", "card_number", "ssn",
    "date_of_birth", "phone", "pin", "account_number",
)
_ID_KINDS = tuple(kind for kind, _ in _ID_CUES)
_SPELLED_KINDS = frozenset(("iban", "national_id", "licence_plate", "address"))


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:  # noqa: PLR2004 - the doubled digit's digit sum
                d -= 9
        total += d
    return total % 10 == 0


def spoken_digits(run: str) -> tuple[str, str]:
    """The digits a spoken or mixed run stands for, and the run with its groups as digit groups.

    ``"five five five, one two three"`` -> ``("555123", "555 123")``.
    """
    groups: list[str] = []
    last = 0
    current = ""
    for match in _SPOKEN_TOKEN.finditer(run):
        gap = run[last:match.start()]
        if current and any(c in gap for c in ",.-"):
            groups.append(current)
            current = ""
        current += _token_digits(match.group(0).lower())
        last = match.end()
    if current:
        groups.append(current)
    return "".join(groups), " ".join(groups)


def _token_digits(token: str) -> str:
    if token[0].isdigit():
        return token
    words = token.replace("-", " ").split()
    if words[0] in ("double", "triple"):
        return _UNIT[words[-1]] * (2 if words[0] == "double" else 3)
    if words[0] in _TENS:
        return _TENS[words[0]] + (_UNIT[words[-1]] if len(words) > 1 else "0")
    if words[0] in _TEEN:
        return _TEEN[words[0]]
    return _UNIT[words[0]]


def _birth_year(span: str, numeric: bool) -> bool:
    """Whether a date span names a year people now alive were born in (1900 to ten years ago)."""
    digits = _DATE_SEPARATOR.split(span) if numeric else _YEAR_DIGITS.findall(span)
    if numeric:
        digits = [d for d in digits if len(d) == len("yyyy")] or digits[-1:]
    if digits:
        year = int(digits[-1])
        if len(digits[-1]) == len("yy"):
            year += 2000 if year <= _THIS_YEAR % 100 else 1900
        return _OLDEST_BIRTH_YEAR <= year <= _THIS_YEAR - _YOUNGEST_AGE
    match = _SPOKEN_CENTURY.search(span)
    if match is None:
        return False
    if match.group(1).lower() == "nineteen":
        return True
    year_digits = spoken_digits(match.group(2))[0] if match.group(2).strip() else ""
    return 2000 + int(year_digits[-2:] or 0) <= _THIS_YEAR - _YOUNGEST_AGE


def _name_value(value: str) -> str | None:
    """The leading name-like words of ``value``, or None: no stop words, and after a capitalised
    first word only capitalised ones ("Holmes called" is one name word; "sherlock holmes" two)."""
    kept: list[str] = []
    for word in value.split():
        bare = word.strip(".,;:!?")
        capitalised_name = bool(kept) and kept[0][0].isupper()
        if not bare or bare.lower().strip("'’") in _STOP or (capitalised_name and not bare[0].isupper()):
            break
        kept.append(bare)
        if bare != word:
            break  # punctuation ends the name
    return " ".join(kept) if kept else None


@dataclass(frozen=True)
class Redactor:
    """Masks the configured kinds of personal data (see the module's docstring)."""

    kinds: frozenset[str] = frozenset(FAST_KINDS)
    """What to mask; each listed kind also brings its ``BROUGHT`` kinds."""
    min_digits: int = 4
    """Digit runs this long or longer are masked as ``account_number`` (IP addresses as ``ip_address``)."""
    uncued: bool = False
    """Also mask what has no cue: a name from ``operators.names``, a street name without a number. For
    dead letters, whose prose nobody needs; it would mask the places and doctors that suggestions name."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(STRICT_KINDS))
        if unknown:  # a typo would mask nothing, silently
            raise ValueError(f"no such kind of personal data: {', '.join(unknown)} (schemas/policy.py)")
        kinds = set(self.kinds)
        for kind in self.kinds:
            kinds.update(BROUGHT.get(kind, ()))
        object.__setattr__(self, "kinds", frozenset(kinds))

    def redact(self, text: str) -> tuple[str, list[str]]:
        """The text with personal data masked, and the kinds masked (in order found)."""
        if not text:
            return text, []
        if not text.isascii():
            text = text.translate(_DIGITS)
        found: list[str] = []
        kinds = self.kinds
        low = text.lower()
        words = set(_WORDS.findall(low)) if not kinds.isdisjoint(_WORDY_KINDS) else frozenset()
        tokens = low.split()
        if '"' in low or "'" in low or "(" in low:  # quoted words ("'n w one six x e'", a JSON text)
            tokens = [token.strip("\"'()[]{}<>") for token in tokens]
        if "email" in kinds and (
            "@" in text or "at" in tokens and _AT_DOMAIN.search(low)
            or "at" in low and _AT_BRACKET.search(low)
        ):
            text, n = _SPOKEN_EMAIL.subn("[EMAIL]", text)
            found += ["email"] * n
            text, n = _EMAIL.subn("[EMAIL]", text)
            found += ["email"] * n
            if "@" in text:
                text, n = _SPACED_EMAIL.subn("[EMAIL]", text)
                found += ["email"] * n
        if "credential" in kinds and not words.isdisjoint(_CRED_WORDS):
            text = self._credentials(text, found)
        has_digit = _ANY_DIGIT.search(text) is not None
        letters_digits = has_digit and _IBAN_GATE.search(text) is not None  # "GB82", "QQ 12", "AB12"
        if "iban" in kinds and letters_digits:
            text = _IBAN.sub(lambda m: self._iban(m, found), text)
        # Whitespace tokens find a spoken run (it has several words) at C speed; with digits, a
        # mixed run's one word may end in punctuation ("4 1 1 one.").
        spoken = not _SPOKEN_WORDS.isdisjoint(tokens) or (
            has_digit and any(token.strip(".,;:!?") in _SPOKEN_WORDS for token in tokens)
        )
        if spoken and not kinds.isdisjoint(_SPELLED_KINDS) and _spelled_gate(tokens):
            text = _SPELL_RUN.sub(lambda m: self._spelled(m, found), text)
        # Values of digits alone are named by the digit passes (``_CONTEXT``); this pass is for values
        # with letters ("D1234567", "AB12 CDE", a BIC).
        if (has_digit or "swift" in low or "bic" in low) and not _ID_WORDS.isdisjoint(tokens) \
                and not kinds.isdisjoint(_ID_KINDS) and (not has_digit or _LETTER_DIGIT.search(text)):
            text = _ID_VALUE.sub(lambda m: self._id(m, found), text)
        if letters_digits:
            if "national_id" in kinds:
                text, n = _NINO.subn("[NATIONAL_ID]", text)
                found += ["national_id"] * n
            if "licence_plate" in kinds:
                text, n = _UK_PLATE.subn("[LICENCE_PLATE]", text)
                found += ["licence_plate"] * n
        if (spoken or has_digit) and "card_expiry" in kinds and not _EXPIRY_WORDS.isdisjoint(tokens):
            text = _EXPIRY.sub(lambda m: self._expiry(m, found), text)
        if (
            "ip_address" in kinds
            and has_digit
            and (_IP_GATE.search(text) or "::" in text or text.count(":") > 6)  # noqa: PLR2004 - an IPv6 address has up to 7 colons
        ):
            text = self._ips(text, found)
        if "date_of_birth" in kinds and (
            spoken or _DOB_HINT.search(low)
            or has_digit and (_NUMERIC_DATE.search(text) or _MONTH_HINT.search(low))
        ):
            text = _DATE.sub(lambda m: self._date(m, text, found), text)
            if _DOB_HINT.search(low) or "yob" in low:
                text = _BIRTH_YEAR.sub(lambda m: _mask_group(m, "year", "date_of_birth", found), text)
        if "age" in kinds and (spoken or has_digit) and _AGE_HINT.search(low):
            text = _AGE.sub(
                lambda m: _mask_group(m, "before" if m.group("before") else "after", "age", found), text
            )
        if "address" in kinds and (has_digit or self.uncued or not words.isdisjoint(_ADDRESS_WORDS)):
            text = self._addresses(text, found)
        if spoken and any(k in kinds for k in _CLASSIFIED):
            text = _SPOKEN_RUN.sub(lambda m: self._spoken(m, text, found), text)
        if (has_digit or spoken) and _ANY_DIGIT.search(text):
            if "phone" in kinds:
                text, n = _PAREN_PHONE.subn("[PHONE]", text)
                found += ["phone"] * n
            text = _DIGIT_RUN.sub(lambda m: self._number(m, text, found), text)
        if "person" in kinds:
            if not words.isdisjoint(_PERSON_WORDS) and _PERSON_HINT.search(low):
                text = self._people(text, found)
            if self.uncued:
                text = _uncued_names(text, found)
        return text, found

    # -- passes ------------------------------------------------------------------------------------
    def _credentials(self, text: str, found: list[str]) -> str:
        """Every credential of the text, in any order: each search starts where the last value ended."""
        def pair(match: re.Match) -> str:
            found.extend(("credential", "credential"))
            whole, base = match.group(0), match.start()
            (s1, e1), (s2, e2) = match.span("first"), match.span("second")
            return (
                whole[: s1 - base]
                + "[CREDENTIAL]"
                + whole[e1 - base : s2 - base]
                + "[CREDENTIAL]"
                + whole[e2 - base :]
            )

        text = _CRED_PAIR.sub(pair, text)
        parts: list[str] = []
        kept = scan = 0
        while (match := _CREDENTIAL.search(text, scan)) is not None:
            span = _credential_value(match)
            if span is None:
                scan = match.end("key")
                continue
            parts += (text[kept:span[0]], "[CREDENTIAL]")
            found.append("credential")
            kept = scan = span[1]
        return "".join(parts) + text[kept:] if parts else text

    def _spelled(self, match: re.Match, found: list[str]) -> str:
        """A run of spelled letters and digits: the codes in it that check out, masked by their kind."""
        run = match.group(0)
        pieces = [(m.start(), m.end(), _spelled_chars(m.group(0))) for m in _SPELL_TOKEN_RE.finditer(run)]
        if len(pieces) < _SPELL_MIN_TOKENS:
            return run
        out: list[str] = []
        kept, i = 0, 0
        while i < len(pieces):
            hit = self._spelled_code(pieces, i)
            if hit is None:
                i += 1
                continue
            kind, j = hit
            out += (run[kept:pieces[i][0]], f"[{kind.upper()}]")
            found.append(kind)
            kept, i = pieces[j][1], j + 1
        return "".join(out) + run[kept:] if out else run

    def _spelled_code(self, pieces: list[tuple[int, int, str]], i: int) -> tuple[str, int] | None:
        """The kind and last piece of a code starting at piece ``i``, or None."""
        head = "".join(chars for _, _, chars in pieces[i:i + 12])
        if not (head[:1].isalpha() and any(c.isdigit() for c in head[:10])):
            return None
        if "iban" in self.kinds and head[:2].isalpha() and head[2:4].isdigit():
            compact, ends = "", []
            for _, _, chars in pieces[i:]:
                compact += chars
                ends.append(len(compact))
                if len(compact) > _IBAN_MAX:
                    break
            for j in range(len(ends) - 1, -1, -1):
                if ends[j] >= _IBAN_MIN and _mod97(compact[:ends[j]]) and _iban.is_valid(compact[:ends[j]]):
                    return "iban", i + j
        for kind, shape in _SPELLED_SHAPES:
            if kind not in self.kinds:
                continue
            match = shape.match(head)
            if match is None:
                continue
            length = 0
            for j in range(i, len(pieces)):
                length += len(pieces[j][2])
                if length == match.end():
                    return kind, j
                if length > match.end():
                    break
        return None

    def _id(self, match: re.Match, found: list[str]) -> str:
        kind = next(k for k in _ID_KINDS if match.group(k) is not None)
        if kind not in self.kinds:
            return match.group(0)
        value = match.group("value")
        trimmed = _TRAILING_WORD.sub("", value) or value
        digits = _spelled_digits(trimmed)
        if kind == "cvv":
            ok = len(digits) in _CVV_DIGITS
        elif kind == "bank_code" and _BIC.fullmatch(trimmed):
            ok = True
        else:
            ok = len(digits) >= _ID_MIN_DIGITS[kind]
        if not ok:
            return match.group(0)
        found.append(kind)
        start = match.start("value") - match.start()
        return match.group(0)[:start] + f"[{kind.upper()}]" + match.group(0)[start + len(trimmed):]

    def _expiry(self, match: re.Match, found: list[str]) -> str:
        value = match.group("value")
        if match.group("spoken") is not None:
            digits = spoken_digits(value)[0]
            if len(digits) not in (4, 6) or int(digits[:2]) not in _MONTHS:
                return match.group(0)
        elif match.group("numeric") is not None:
            parts = [p for p in re.split(r"\s*[/\-.]\s*", value) if p]
            month = parts[1] if len(parts[0]) == len("yyyy") else parts[0]
            if int(month) not in _MONTHS:
                return match.group(0)
        return _mask_group(match, "value", "card_expiry", found)

    def _ips(self, text: str, found: list[str]) -> str:
        def replace(match: re.Match) -> str:
            address = match.group(0)
            if ":" in address:
                try:
                    ipaddress.IPv6Address(address)
                except ValueError:
                    return address
                size = len(_HEX.findall(address))
            else:
                size = sum(c.isdigit() for c in address)
            if size < self.min_digits and not _IP_CUE.search(
                text[max(0, match.start() - _CONTEXT_CHARS) : match.start()]
            ):
                return address
            found.append("ip_address")
            return "[IP_ADDRESS]"

        if _IP_GATE.search(text):
            text = _IPV4.sub(replace, text)
        if "::" in text or text.count(":") > 6:  # noqa: PLR2004 - eight groups, or fewer and "::"
            text = _IPV6.sub(replace, text)
        return text

    def _iban(self, match: re.Match, found: list[str]) -> str:
        # The match may run on into the next words: try it whole, then a group shorter at a time.
        groups = re.split(r"([ \-])", match.group(0))
        for end in range(len(groups), 0, -2):
            compact = "".join(groups[:end:2]).upper()
            if _mod97(compact) and _iban.is_valid(compact):
                found.append("iban")
                return "[IBAN]" + "".join(groups[end:])
        return match.group(0)

    def _date(self, match: re.Match, text: str, found: list[str]) -> str:
        span = match.group(0)
        before = text[max(0, match.start() - 60):match.start()]
        if match.group("num") is not None and _last_context(before[-_CONTEXT_CHARS:]) in _ID_CONTEXTS:
            return span  # "sort code 20-00-00": the digit pass names it
        if not (_DOB_CONTEXT.search(before) or (match.group("my") is None
                                                 and _birth_year(span, match.group("num") is not None))):
            return span
        found.append("date_of_birth")
        return "[DATE_OF_BIRTH]"

    def _addresses(self, text: str, found: list[str]) -> str:
        def street(match: re.Match) -> str:
            words = [w.lower() for w in match.group("words").split()]
            if any(w in _STOP or w in _MEASURES for w in words):
                return match.group(0)
            if not match.group("words")[0].isupper() and match.group("suffix").lower() not in _PLAIN_SUFFIXES:
                return match.group(0)
            found.append("address")
            return "[ADDRESS]"

        def coded(match: re.Match) -> str:
            found.append("address")
            return "[ADDRESS]"

        low = text.lower()
        if _ADDRESS_CUE_HINT.search(low):
            text = _cued_addresses(text, found)
        if _SUFFIX_HINT.search(low):
            text = _STREET.sub(street, text)
        if _POSTCODE_HINT.search(low):
            text = _UK_POSTCODE.sub(coded, text)
        if _ZIP_HINT.search(text):
            text = _US_ZIP.sub(coded, text)
        if _ANY_DIGIT.search(text) and _UNIT_HINT.search(low):
            text = _UNIT_NUMBER.sub(coded, text)
        if _CA_POSTCODE_HINT.search(low):
            text = _CA_POSTCODE.sub(coded, text)
        if self.uncued and _SUFFIX_HINT.search(low):
            text = _NAMED_STREET.sub(coded, text)
        return text

    def _spoken(self, match: re.Match, text: str, found: list[str]) -> str:
        run = match.group(0)
        if not _WORD_DIGIT.search(run):
            return run  # typed digits only: the digit pass reads them with their shapes
        digits, grouped = spoken_digits(run)
        kind = self._classify(digits, grouped, text[max(0, match.start() - _CONTEXT_CHARS):match.start()])
        if kind is None:
            return run
        found.append(kind)
        return f"[{kind.upper()}]"

    def _number(self, match: re.Match, text: str, found: list[str]) -> str:
        run = match.group(0)
        digits = run if run.isdigit() else _NON_DIGIT.sub("", run)
        if len(digits) < _PIN_DIGITS.start:
            return run  # too short to be any kind
        start = match.start()
        if _in_digest(text, start, match.end()):
            return run  # a hash or a UUID (a policy's sha256, an id): not personal data
        before = text[max(0, start - _CONTEXT_CHARS):start]
        if "date_of_birth" in self.kinds and _DATE_PART.match(_token_at(text, start, match.end())) \
                and _last_context(before) not in _ID_CONTEXTS:
            return run  # part of a date the date pass kept: not personal data, not an account number
        kind = self._classify(digits, run, before)
        if kind is None:
            return run
        found.append(kind)
        return f"[{kind.upper()}]"

    def _classify(self, digits: str, run: str, before: str) -> str | None:
        """The kind of a run of ``digits`` (as written: ``run``) after the text ``before``, or None."""
        n = len(digits)
        if n < _PIN_DIGITS.start:
            return None
        kinds = self.kinds
        context = _last_context(before) if before else None
        kind = None
        if context in _ID_CONTEXTS and context in kinds and n >= _ID_DIGITS:
            kind = context
        elif context == "cvv" and "cvv" in kinds and n in _CVV_DIGITS:
            kind = "cvv"
        elif "card_number" in kinds and n in _CARD_DIGITS and luhn_valid(digits):
            kind = "card_number"
        elif "ssn" in kinds and n == _SSN_DIGITS and (context == "ssn" or _SSN_SHAPE.match(run.strip())):
            kind = "ssn"
        elif "date_of_birth" in kinds and context == "date_of_birth" and n in _DATE_DIGITS:
            kind = "date_of_birth"
        elif "account_number" in kinds and context == "account_number" and n >= _KEYWORD_ACCOUNT_DIGITS:
            kind = "account_number"
        elif "phone" in kinds and n in _PHONE_DIGITS and (
            context == "phone" or _PHONE_SHAPE.match(run.strip()) or _valid_phone(digits, run)
        ):
            kind = "phone"
        elif "pin" in kinds and n in _PIN_DIGITS and context == "pin":
            kind = "pin"
        elif "account_number" in kinds and n >= self.min_digits:
            kind = "account_number"
        return kind

    def _people(self, text: str, found: list[str]) -> str:
        def weak(match: re.Match, names: list[str]) -> str:
            words = []
            for word in match.group("name").split():
                if not word[0].isupper() or word.lower() in _NOT_NAMES or word.lower() in _STOP:
                    break
                words.append(word)
            return _mask_name(match, " ".join(words) or None, found, names)

        before = len(found)
        names: list[str] = []
        text = _SPELLED.sub(lambda m: _mask_name(m, m.group("name"), found), text)
        text = _STRONG.sub(lambda m: _mask_name(m, _name_value(m.group("name")), found, names), text)
        text = _WEAK.sub(lambda m: weak(m, names), text)
        text = _SPEAKING.sub(lambda m: weak(m, names), text)
        if len(found) > before and names:
            # The same name said again ("the name's Bond, James Bond"), with a capitalised word before it.
            words = sorted({w for name in names for w in name.split() if len(w) > 1}, key=len, reverse=True)
            again = re.compile(
                rf"(?:\b(?-i:[A-Z])[^\W\d_]+\s+)?\b(?:{'|'.join(map(re.escape, words))})\b"
                r"(?:\s+(?-i:[A-Z])[^\W\d_]+\b)?",
                re.IGNORECASE,
            )
            text, n = again.subn("[PERSON]", text)
            found += ["person"] * n
        return text

    def redact_all(self, texts: Iterable[str]) -> tuple[list[str], list[str]]:
        out, found = [], []
        for text in texts:
            clean, kinds = self.redact(text)
            out.append(clean)
            found += kinds
        return out, found


def _cued_addresses(text: str, found: list[str]) -> str:
    """What follows "my address is", "I live on", "send it to" ... up to its clause's end, masked; the
    search goes on after each value (not after its match), so a cue inside a match is found too."""
    out: list[str] = []
    kept, pos = 0, 0
    while (match := _ADDRESS_CUE.search(text, pos)) is not None:
        value = _CLAUSE_END.split(match.group("value"), maxsplit=1)[0].rstrip(" ,")
        start = match.start("value")
        pos = max(start + len(value), match.start() + 1)
        if not _MARKER.fullmatch(value):  # else masked already, by its own kind ("send it to [EMAIL]")
            found.append("address")
            out += (text[kept:start], "[ADDRESS]")
            kept = pos
    return "".join(out) + text[kept:] if out else text


def _last_context(before: str) -> str | None:
    """The kind the keyword nearest the end of ``before`` names, or None."""
    context = None
    for match in _CONTEXT.finditer(before.lower()):
        context = match.lastgroup
    return context


def _spelled_gate(tokens: list[str]) -> bool:
    """Whether whitespace tokens hold letters spelled out: two single letters in a row ("q q"), or two
    letters before a spoken digit ("gb eighty")."""
    for token, after in itertools.pairwise(tokens):
        if len(token) == 1 and token.isalpha() and len(after.rstrip(",-")) == 1 and after[0].isalpha():
            return True
        if len(token) == 2 and token.isalpha() and after.rstrip(",") in _SPOKEN_WORDS:  # noqa: PLR2004
            return True
    return False


def _mask_group(match: re.Match, group: str, kind: str, found: list[str]) -> str:
    """The match with its ``group`` replaced by ``kind``'s marker."""
    found.append(kind)
    whole, base = match.group(0), match.start()
    start, end = match.span(group)
    return whole[:start - base] + f"[{kind.upper()}]" + whole[end - base:]


_SPELL_TOKEN_RE = re.compile(_SPELL_TOKEN, re.IGNORECASE)
_IBAN_MIN, _IBAN_MAX = 15, 34
#: A trailing "I" or "a" that an id's value took in ("passport 502135326 I think").
_TRAILING_WORD = re.compile(r"(?:[ \t,]+(?:I|a))+$")


def _spelled_chars(token: str) -> str:
    """What one spelled token stands for: its digits if it is a number, else its letters (capitals)."""
    low = token.lower()
    if low[0].isdigit():
        return token
    if low in _UNIT and len(low) > 1 or _SPOKEN_TOKEN.fullmatch(low) and len(low) > 1:
        return _token_digits(low)
    return token.upper()


def _spelled_digits(value: str) -> str:
    """The digits of an id's value: typed digits, and spoken ones in whole words."""
    out = []
    for token in re.split(r"[\s,./\-]+", value):
        if not token:
            continue
        low = token.lower()
        if any(c.isdigit() for c in token):
            out.append(_NON_DIGIT.sub("", token))
        elif low in _SPOKEN_WORDS and low not in ("double", "triple"):
            out.append(_token_digits(low))
    return "".join(out)


def _credential_value(match: re.Match) -> tuple[int, int] | None:
    """Where the credential value of a ``_CREDENTIAL`` match lies, or None when it is not one."""
    value, key = match.group("value"), match.group("key").lower()
    if _SINGLE_VALUE_KEYS.match(key):
        value = value.split()[0]
        if value.lower().strip(".!?") in _STOP:
            return None
        if key.startswith("pass") and "code" in key and not _WORD_DIGIT.search(value):
            return None  # a numeric passcode: the pin rule names it
        value = value.rstrip(".!?")
    else:
        value = _name_value(value) or ""
        if len(value.strip(".,!?")) < _MIN_ANSWER_CHARS:
            return None  # "security answer 2": which answer, not the answer
    start = match.start("value")
    return start, start + len(value)


def _mod97(compact: str) -> bool:
    """The IBAN check (ISO 7064 mod 97-10) alone: cheap, so python-stdnum (which also checks each
    country's length and format) sees only the candidates that pass it."""
    if not _IBAN_CHARS.fullmatch(compact):
        return False
    return int((compact[4:] + compact[:4]).translate(_IBAN_LETTERS)) % 97 == 1


_HEX_CHARS = frozenset("0123456789abcdefABCDEF-")
_DIGEST_CHARS = 64  # a SHA-256 hex digest, the longest shape below
_DIGEST = re.compile(
    r"[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}|[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
)


def _in_digest(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` lies in a digest or a UUID (exactly an MD5, SHA-1 or SHA-256 hex
    digest, or a UUID, with a letter in it), whose digits a number pass would take for a phone."""
    if not (start > 0 and text[start - 1] in _HEX_CHARS or end < len(text) and text[end] in _HEX_CHARS):
        return False
    # No digest is longer than _DIGEST_CHARS: looking no further keeps a long hex run linear.
    floor, ceiling = max(0, end - _DIGEST_CHARS - 1), min(len(text), start + _DIGEST_CHARS + 1)
    low, high = start, end
    while low > floor and text[low - 1] in _HEX_CHARS:
        low -= 1
    while high < ceiling and text[high] in _HEX_CHARS:
        high += 1
    token = text[low:high]
    return _DIGEST.fullmatch(token) is not None and not token.replace("-", "").isdigit()


def _token_at(text: str, start: int, end: int) -> str:
    """The run of non-space characters around ``text[start:end]`` (at most 12 more on each side: a
    date is shorter), trailing punctuation dropped."""
    low, high = max(0, start - 12), min(len(text), end + 12)
    while start > low and not text[start - 1].isspace():
        start -= 1
    while end < high and not text[end].isspace():
        end += 1
    return text[start:end].rstrip(".,;:!?)")


#: The parse-time default where no policy names the kinds: every fast kind.
FAST = Redactor()


_NAME_WORD = re.compile(r"[^\W\d_][^\W\d_'’\-]*(?:['’\-][^\W\d_]+)*")
#: Words after a name that make it a place or a business ("Hilton Hotel", "Baker Street").
_PLACE_WORDS = _wordset("""
hotel hotels inn motel hostel lodge resort restaurant cafe café bar pub club grill kitchen bistro diner
pizzeria apartments apartment tower towers plaza center centre mall market airport station hospital clinic
surgery school university college academy park bank church museum theatre theater gallery cinema company inc
ltd llc corp group airlines airways street st road rd avenue ave lane ln drive dr boulevard blvd close
crescent court place square terrace way grove gardens mews parkway highway circle trail row walk hill rise
green view alley bridge heights village city town county state beach island lake river valley
""")
#: Words before a name that make it a place ("San Francisco", "St Albans", "Fort Worth").
_PLACE_PREFIXES = _wordset("san santa santo são sao los las st saint ste fort port mount mt lake new")
_NAME_GAP = re.compile(r"\s+|,\s*")


def _uncued_names(text: str, found: list[str]) -> str:
    """Names with no cue: a capitalised given name; a surname or an unknown capitalised word beside
    a name; a lower-case given name followed by a surname ("katrina miller"). Not before a place word."""
    first, last = names()
    words = [m for m in _NAME_WORD.finditer(text) if not (m.start() and text[m.start() - 1] in "[_")]
    if not words:
        return text
    lows = [m.group(0).lower() for m in words]
    caps = [m.group(0)[0].isupper() for m in words]
    plain = [w not in _STOP and w not in _NOT_NAMES and w not in _PLACE_WORDS and w not in _PLACE_PREFIXES
             for w in lows]

    def gap(i: int) -> str:  # what lies between word i and word i + 1
        return text[words[i].end():words[i + 1].start()]

    def joined(i: int) -> bool:
        return i + 1 < len(words) and _NAME_GAP.fullmatch(gap(i)) is not None

    def is_name(word: str, table: frozenset[str]) -> bool:
        return word in table or any(part in table for part in re.split(r"['’\-]", word) if len(part) > 2)  # noqa: PLR2004 - "o'" and "-d" are no names

    masked = [False] * len(words)
    for i, low in enumerate(lows):
        if not plain[i]:
            continue
        if caps[i]:
            beside = (i > 0 and joined(i - 1) and caps[i - 1] and plain[i - 1]) or (
                joined(i) and caps[i + 1] and plain[i + 1])
            masked[i] = is_name(low, first) or beside and is_name(low, last)
        elif joined(i) and " " in gap(i) and "," not in gap(i) and not caps[i + 1] and plain[i + 1] \
                and low in first and lows[i + 1] in last:
            masked[i] = masked[i + 1] = True
    # Capitalised words beside a name are part of it ("Sherlock" in "Sherlock Holmes", "Natarajan").
    for i in [*range(len(words)), *range(len(words) - 1, -1, -1)]:
        if not masked[i]:
            continue
        for j in (i - 1, i + 1):
            if 0 <= j < len(words) and caps[j] and plain[j] and joined(min(i, j)):
                masked[j] = True
    # Not a name where a place prefix comes before it ("San Francisco").
    for i in range(1, len(words)):
        if masked[i] and caps[i - 1] and lows[i - 1] in _PLACE_PREFIXES and gap(i - 1).isspace():
            j = i
            while j < len(words) and masked[j] and (j == i or gap(j - 1).isspace()):
                masked[j] = False
                j += 1
    # Not a name where a place word follows the run ("Hilton Hotel").
    for i in range(len(words) - 1, -1, -1):
        if masked[i] and joined(i) and not masked[i + 1] and lows[i + 1] in _PLACE_WORDS:
            j = i
            while j >= 0 and masked[j] and (j == i or joined(j)):
                masked[j] = False
                j -= 1
    out: list[str] = []
    kept, i = 0, 0
    while i < len(words):
        if not masked[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(words) and masked[j + 1] and gap(j).isspace():
            j += 1
        out += (text[kept:words[i].start()], "[PERSON]")
        found.append("person")
        kept, i = words[j].end(), j + 1
    return "".join(out) + text[kept:] if out else text


def _mask_name(match: re.Match, name: str | None, found: list[str], names: list[str] | None = None) -> str:
    if not name:
        return match.group(0)
    if names is not None:
        names.append(name)
    whole = match.group(0)
    start = match.start("name") - match.start()
    found.append("person")
    return whole[:start] + "[PERSON]" + whole[start + len(name):]


def _valid_phone(digits: str, run: str) -> bool:
    """Whether ``phonenumbers`` reads the run as a valid US or UK number (international if it has +)."""
    regions = (None,) if run.lstrip().startswith("+") else ("US", "GB")
    for region in regions:
        try:
            number = phonenumbers.parse(("+" if region is None else "") + digits, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False
