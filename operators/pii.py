"""Find and mask personal data in text, typed or transcribed from voice.

The policy names the kinds to mask. Text is scanned after NFKC normalisation
(the contracts already apply it) with every Unicode digit read as its ASCII
value, so full-width or Arabic-Indic digits, spaced-out digits and dashes do
not hide a number; digits spoken as words ("four one one one", "oh", "double
seven", "nineteen eighty") are read as digits too. Each finding is replaced
by a marker naming its kind, such as ``[CARD_NUMBER]``; the caller learns
which kinds it masked.

Kinds, in the order they are tried:
- ``email``: ``name@host.tld``, also spelled ``name dot last at host dot com`` or ``[at]``.
- ``credential``: the value after password, passcode, username, security answer,
  memorable word, mother's maiden name ...
- ``iban``: an IBAN whose check digits hold (``GB82 WEST 1234 5698 7654 32``).
- ``date_of_birth``: a date, numeric or spelled ("the third of May 1980"),
  after "born", "birth", "DOB" or "birthday", or a full date whose year is a birth year.
- ``address`` (strict): a street line ("221B Baker Street", "1600 Pennsylvania
  Avenue NW"), a UK postcode, a US ZIP after a state, what follows "my address is".
- ``card_number``: 13-19 digits passing Luhn.
- ``ssn``: ``123-45-6789`` (or spaced), or nine digits near "ssn"/"social security".
- ``phone``: ``+1 (555) 123-4567``, ``555.123.4567``, ``+44 20 7946 0958``, or a number
  ``phonenumbers`` finds valid in the US or the UK.
- ``pin``: 3-8 digits after "pin", "passcode", "security code", "cvv" or "code".
- ``account_number``: any other run of ``min_digits`` (default 4) or more digits,
  or of 4 or more after "account", "member", "reference" ...
- ``person`` (strict): the name after "my name is", "call me", "surname is", a title
  (Mr, Mrs, Ms, Miss), or a capitalised name after "I'm", "this is"; spelled-out letters after those.

``FAST_KINDS`` cost a few microseconds on a turn: they run at parse, before the
model. ``STRICT_KINDS`` add people and addresses: they run where text leaves
the job (``operators.privacy``). docs/privacy.md says what each misses.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import phonenumbers
from stdnum import iban as _iban


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


FAST_KINDS = (
    "email", "credential", "iban", "date_of_birth", "card_number", "ssn", "phone", "pin", "account_number",
)
STRICT_KINDS = (*FAST_KINDS, "address", "person")
KINDS = FAST_KINDS

# Every Unicode decimal digit -> its ASCII digit (NFKC leaves Arabic-Indic,
# Devanagari ... digits alone).
_DIGITS = {
    cp: str(unicodedata.digit(chr(cp)))
    for cp in range(sys.maxunicode + 1)
    if unicodedata.category(chr(cp)) == "Nd" and not chr(cp).isascii()
}

# -- e-mail --------------------------------------------------------------------------------------
_SEP = r"[ \t\-.\u00a0]"
_LABEL = r"[^\s@<>()\[\]{},;:\"'.]+"
_DOT = r"(?:\.|\s*(?:\[dot\]|\(dot\))\s*|\s+dot\s+)"
_EMAIL = re.compile(
    r"[^\s@<>()\[\]{},;:\"']+\s*(?:@|\[at\]|\(at\)|\{at\}|\s+at\s+)\s*"
    rf"{_LABEL}(?:{_DOT}{_LABEL})*{_DOT}[^\W\d_]{{2,24}}\b",
    re.IGNORECASE,
)
# A spelled address: words joined by "dot", "underscore", "dash" or "." before " at ", and a host
# of words joined by "dot" or "." after it ("john dot smith at gmail.com").
_JOIN = r"(?:\s+(?:dot|underscore|dash|hyphen|plus)\s+|[._+-])"
_DIGIT_WORD = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)"
_SPOKEN_EMAIL = re.compile(
    rf"\b[\w+-]+(?:(?:{_JOIN}|\s+(?={_DIGIT_WORD}\b))[\w+-]+)*\s+at\s+[\w-]+(?:(?:\s+dot\s+|\.)[\w-]+)*"
    r"(?:\s+dot\s+|\.)"
    r"[^\W\d_]{2,24}\b",
    re.IGNORECASE,
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
_CONTEXT = re.compile(
    r"\b(?:(?P<ssn>ssn|social\s*security|social)"
    r"|(?P<pin>pin|pin\s*(?:number|code)|passcode|pass\s*code|security\s*code|cvv|cvc|code)"
    r"|(?P<date_of_birth>born|birth|dob|d\.o\.b|birthday)"
    r"|(?P<phone>phone|mobile|cell|cellphone|telephone|tel|landline|fax|call\s+me|ring\s+me|text\s+me"
    r"|(?:my|contact|home|work|mobile|callback|call-back)\s+number)"
    r"|(?P<account_number>account|acct|a/c|member(?:ship)?|customer\s+(?:number|id)|policy\s+number"
    r"|reference|ref|sort\s*code|routing|iban|card)"
    r"|(?P<postcode>zip(?:\s*code)?|postal\s*code|post\s*code))\b",
    re.IGNORECASE,
)
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
_AT_DOMAIN = re.compile(r"\bat\b[^\n]{0,64}?(?:\bdot\b|\.[^\W\d_]{2})")
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

# -- IBAN ------------------------------------------------------------------------------------------
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ \-]?[A-Z0-9]){11,30}\b", re.IGNORECASE)
_IBAN_GATE = re.compile(r"[A-Za-z]{2}\s*\d{2}")
_IBAN_CHARS = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}")  # 15 to 34 characters
_IBAN_LETTERS = {ord(c): str(ord(c) - 55) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}  # A=10 ... Z=35

# -- credentials -----------------------------------------------------------------------------------
_CRED_KEY = (
    r"(?:pass\s*(?:word|phrase)|pwd|user\s*(?:name|id)|login(?:\s+(?:name|id))?|log-in"
    r"|security\s+(?:answer|word|question\s+answer)|answer\s+to\s+(?:my|the)\s+security\s+question"
    r"|memorable\s+(?:word|name|place|information)|secret\s+(?:word|answer|question\s+answer)"
    r"|(?:mother|mum|mom)'?s\s+maiden\s+name|maiden\s+name|(?:first\s+|childhood\s+)?pet'?s\s+name"
    r"|name\s+of\s+(?:my|the)\s+(?:first\s+|childhood\s+)?pet|(?:first|childhood)\s+pet(?!['’]|s\b)|passcode"
    r"|pass\s*code)\b"
)
_CREDENTIAL = re.compile(
    rf"\b(?P<key>{_CRED_KEY})(?P<link>(?:\s+(?:for|on)\s+(?:my|the|your)\s+\w+)?"
    r"(?:\s+(?:is|was|would\s+be|should\s+be|it's|its|of))?\s*[:=]?\s*)"
    r"[\"'“‘]?(?P<value>[^\s,;:\"'“”‘’()\[\].!?][^\s,;:\"'“”‘’()\[\]]*(?:\s+[^\s,;:\"'“”‘’()\[\].!?]+){0,2})",
    re.IGNORECASE,
)
_CRED_WORDS = _wordset(
    "password passwords passcode pass passphrase pwd username user userid login log security memorable secret"
    " maiden pet pets"
)
_SINGLE_VALUE_KEYS = re.compile(r"pass|pwd|user|log", re.IGNORECASE)
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
    r"|(?:i\s+am|i'm|i’m|im)\s+called|mister|missus|mr\.?|mrs\.?|mx\.?|(?-i:Ms\.?|Miss))"
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
    r"name|call|mist|miss|mr|ms\b|mx|i'm|i’m|i\s+am|\bim\b|this\s+is|it's|it’s|it\s+is|speaking|talking"
    r"|spel|that's|that\s+is"
)
_PERSON_WORDS = _wordset(
    "name names call mister missus mr mrs ms miss mx i im am this speaking talking calling spelled spelt"
    " spell spelling hi hello hey surname that it"
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
    rf"(?<![$£€#\w])(?P<number>\d{{1,5}}[a-z]?|(?:{_U})(?:[ \t-]+(?:{_U})){{1,4}})(?:,?[ \t]+|[ \t]*-[ \t]*)"
    rf"(?P<words>(?:[^\W\d_][\w'’\-]*[ \t]+){{1,3}}?)(?P<suffix>{_SUFFIX})\b\.?"
    rf"(?:[ \t]+{_DIRECTION}(?![\w']))?",
    re.IGNORECASE,
)
#: Street names spoken in lower case ("two two one b baker street") take only these suffixes.
_PLAIN_SUFFIXES = _wordset(
    "street st road rd avenue ave lane ln boulevard blvd drive crescent terrace parkway highway"
)
#: Words between a number and a suffix that make it a measure, not a street ("a 3 hour drive").
_MEASURES = _wordset("""
hour hours minute minutes min mins second seconds mile miles km kilometer kilometers kilometre kilometres
meter meters metre metres block blocks bedroom bedrooms bed beds bath baths room rooms people person persons
guest guests doctor doctors day days week weeks month months year years dollar dollars pound pounds buck bucks
transfer transfers star stars floor floors level levels story stories storey storeys car cars bus stop stops
square sq foot feet ft yard yards percent more other extra
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
    r"|mailing\s+|delivery\s+|shipping\s+)?address\s*(?:is|'s|’s|:)|i\s+live\s+at|we\s+live\s+at"
    r"|i\s+moved\s+to|we\s+moved\s+to|(?:send|deliver|post|mail)\s+it\s+to)\s+(?P<value>[^.;!?\n]{3,80})",
    re.IGNORECASE,
)
_ADDRESS_WORDS = frozenset(("address", "live", "moved", "it", *_UNIT))
# Each address pattern's cheap precondition, looked for in the lower-cased text first.
_ADDRESS_CUE_HINT = re.compile(r"address|live at|moved to|it to")
_SUFFIX_HINT = re.compile(rf"\b{_SUFFIX}\b")
_POSTCODE_HINT = re.compile(r"[a-z]\d[a-z\d]?\s*\d[a-z]")
_ZIP_HINT = re.compile(r"\d{5}")

_WORDS = re.compile(r"[a-z]+")

_CLAUSE_END = re.compile(
    r"\s+(?:and|but|so|because|if|can|could|would|please|thanks|thank|where|which|since)\b", re.IGNORECASE
)

_CLASSIFIED = ("card_number", "ssn", "date_of_birth", "phone", "pin", "account_number")


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
    """What to mask. ``account_number`` brings ``iban`` and ``date_of_birth``: runs of digits it
    would mask anyway, named more precisely (not ``12/03/[ACCOUNT_NUMBER]``)."""
    min_digits: int = 4
    """Digit runs this long or longer are masked as ``account_number``."""

    def __post_init__(self) -> None:
        if "account_number" in self.kinds:
            object.__setattr__(self, "kinds", frozenset(self.kinds) | {"iban", "date_of_birth"})

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
        if "email" in kinds and (
            "@" in text or "at" in tokens and _AT_DOMAIN.search(low)
            or "at" in low and _AT_BRACKET.search(low)
        ):
            text, n = _SPOKEN_EMAIL.subn("[EMAIL]", text)
            found += ["email"] * n
            text, n = _EMAIL.subn("[EMAIL]", text)
            found += ["email"] * n
        if "credential" in kinds and not words.isdisjoint(_CRED_WORDS):
            text = _CREDENTIAL.sub(lambda m: self._credential(m, found), text)
        has_digit = _ANY_DIGIT.search(text) is not None
        if "iban" in kinds and has_digit and _IBAN_GATE.search(text):
            text = _IBAN.sub(lambda m: self._iban(m, found), text)
        # Whitespace tokens find a spoken run (it has several words) at C speed; with digits, a
        # mixed run's one word may end in punctuation ("4 1 1 one.").
        spoken = not _SPOKEN_WORDS.isdisjoint(tokens) or (
            has_digit and any(token.strip(".,;:!?") in _SPOKEN_WORDS for token in tokens)
        )
        if "date_of_birth" in kinds and (
            spoken or _DOB_HINT.search(low)
            or has_digit and (_NUMERIC_DATE.search(text) or _MONTH_HINT.search(low))
        ):
            text = _DATE.sub(lambda m: self._date(m, text, found), text)
        if "address" in kinds and (has_digit or not words.isdisjoint(_ADDRESS_WORDS)):
            text = self._addresses(text, found)
        if spoken and any(k in kinds for k in _CLASSIFIED):
            text = _SPOKEN_RUN.sub(lambda m: self._spoken(m, text, found), text)
        if (has_digit or spoken) and _ANY_DIGIT.search(text):
            if "phone" in kinds:
                text, n = _PAREN_PHONE.subn("[PHONE]", text)
                found += ["phone"] * n
            text = _DIGIT_RUN.sub(lambda m: self._number(m, text, found), text)
        if "person" in kinds and not words.isdisjoint(_PERSON_WORDS) and _PERSON_HINT.search(low):
            text = self._people(text, found)
        return text, found

    # -- passes ------------------------------------------------------------------------------------
    def _credential(self, match: re.Match, found: list[str]) -> str:
        value = match.group("value")
        if _SINGLE_VALUE_KEYS.match(match.group("key")):
            value = value.split()[0]
            if value.lower().strip(".!?") in _STOP:
                return match.group(0)
            if match.group("key").lower().startswith("pass") and "code" in match.group("key").lower() \
                    and not _WORD_DIGIT.search(value):
                return match.group(0)  # a numeric passcode: the pin rule names it
            value = value.rstrip(".!?")
        else:
            value = _name_value(value) or ""
            if len(value.strip(".,!?")) < _MIN_ANSWER_CHARS:
                return match.group(0)  # "security answer 2": which answer, not the answer
        found.append("credential")
        start = match.start("value") - match.start()
        whole = match.group(0)
        return whole[:start] + "[CREDENTIAL]" + whole[start + len(value):]

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
        if not (_DOB_CONTEXT.search(before) or (match.group("my") is None
                                                 and _birth_year(span, match.group("num") is not None))):
            return span
        found.append("date_of_birth")
        return "[DATE_OF_BIRTH]"

    def _addresses(self, text: str, found: list[str]) -> str:
        def cued(match: re.Match) -> str:
            value = _CLAUSE_END.split(match.group("value"), maxsplit=1)[0].rstrip(" ,")
            start = match.start("value") - match.start()
            found.append("address")
            return match.group(0)[:start] + "[ADDRESS]" + match.group(0)[start + len(value):]

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
            text = _ADDRESS_CUE.sub(cued, text)
        if _SUFFIX_HINT.search(low):
            text = _STREET.sub(street, text)
        if _POSTCODE_HINT.search(low):
            text = _UK_POSTCODE.sub(coded, text)
        if _ZIP_HINT.search(text):
            text = _US_ZIP.sub(coded, text)
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
        if "date_of_birth" in self.kinds and _DATE_PART.match(_token_at(text, start, match.end())):
            return run  # part of a date the date pass kept: not personal data, not an account number
        kind = self._classify(digits, run, text[max(0, start - _CONTEXT_CHARS):start])
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
        context = None
        if before:
            for context_match in _CONTEXT.finditer(before):
                context = context_match.lastgroup
        kind = None
        if "card_number" in kinds and n in _CARD_DIGITS and luhn_valid(digits):
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


def _mod97(compact: str) -> bool:
    """The IBAN check (ISO 7064 mod 97-10) alone: cheap, so python-stdnum (which also checks each
    country's length and format) sees only the candidates that pass it."""
    if not _IBAN_CHARS.fullmatch(compact):
        return False
    return int((compact[4:] + compact[:4]).translate(_IBAN_LETTERS)) % 97 == 1


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
