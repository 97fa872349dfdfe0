"""A reviewer's corpus of planted personal data: many more forms than ``tests.adversarial.PLANTED``.

Each entry is (text, the values that must never come out in clear, the kinds its masking must
name). The texts are what callers type or what a voice transcript holds: typed, spaced, spoken,
spelled letter by letter, in several orders and phrasings, with and without a cue. The values are
found by ``tests.adversarial.leaks`` however they are spaced or spoken, so a value half masked
("QQ [ACCOUNT_NUMBER] C" keeps "QQ" and "C", but not the value) is not a leak, while a wrong kind
fails the kind check.

``UNCUED_NAMES`` are names given with no cue phrase: only the strict masking of dead letters
finds them (``operators.names``); ``CORPUS`` holds what every strict place masks.
"""

from __future__ import annotations

CORPUS: list[tuple[str, list[str], list[str]]] = [
    # -- card numbers, expiry dates and security codes -------------------------------------------------
    (
        "my card number is four five three nine, one four eight eight, oh three four three,"
        " six four six seven",
        ["4539148803436467"],
        ["card_number"],
    ),
    (
        "it's forty-one eleven, eleven eleven, eleven eleven, eleven eleven",
        ["4111111111111111"],
        ["card_number"],
    ),
    ("card: 5 4 2 5 - 2 3 3 4 - 3 0 1 0 - 9 9 0 3", ["5425233430109903"], ["card_number"]),
    (
        "visa 4111111111111111 exp 09/27 cvv 947",
        ["4111111111111111", "09/27", "cvv 947"],
        ["card_number", "card_expiry", "cvv"],
    ),
    (
        "the card expires 11/2028 and the security code on the back is 3 1 4",
        ["11/2028", "back is 314"],
        ["card_expiry", "cvv"],
    ),
    ("expiry date oh nine twenty seven", ["expiry date 0927"], ["card_expiry"]),
    ("valid thru 04-29, CVC is eight two six", ["04-29", "is 826"], ["card_expiry", "cvv"]),
    ("the expiration date is March 2029", ["march 2029"], ["card_expiry"]),
    ("CVV2: 0 4 7", ["cvv2: 047"], ["cvv"]),
    (
        "amex three seven one four, four nine six three, five three nine eight four three one",
        ["371449635398431"],
        ["card_number"],
    ),
    # -- bank details ------------------------------------------------------------------------------------
    ("sort code 20-00-00 account 31926819", ["20-00-00", "31926819"], ["bank_code", "account_number"]),
    (
        "my sort code is two oh, oh oh, oh oh and the account number is"
        " three one nine two six eight one nine",
        ["code is 200000", "31926819"],
        ["bank_code", "account_number"],
    ),
    (
        "routing number 021000021, checking account 1234567890",
        ["021000021", "1234567890"],
        ["bank_code", "account_number"],
    ),
    ("ABA 011000015", ["011000015"], ["bank_code"]),
    ("the SWIFT code is NWBKGB2L", ["nwbkgb2l"], ["bank_code"]),
    ("BIC: DEUTDEFF500", ["deutdeff500"], ["bank_code"]),
    ("BSB 062-000 account 1234 5678", ["062-000", "12345678"], ["bank_code", "account_number"]),
    # -- IBANs, typed and spelled ------------------------------------------------------------------------
    ("NL91ABNA0417164300 is my iban", ["nl91abna0417164300"], ["iban"]),
    ("iban IE29 AIBK 9311 5212 3456 78", ["ie29 aibk 9311 5212 3456 78"], ["iban"]),
    (
        "G B eight two W E S T one two three four five six nine eight seven six five four three two",
        ["82 west 12345698765432"],
        ["iban"],
    ),
    (
        "my IBAN is gb eighty two west twelve thirty four fifty six ninety eight seventy six"
        " fifty four thirty two",
        ["12345698765432"],
        ["iban"],
    ),
    # -- national and government ids -----------------------------------------------------------------------
    ("my national insurance number is QQ 12 34 56 C", ["qq 12 34 56 c"], ["national_id"]),
    ("NI number AB123456C", ["ab123456c"], ["national_id"]),
    ("it's q q one two three four five six c", ["123456 c"], ["national_id"]),
    ("my NHS number is 943 476 5919", ["9434765919"], ["national_id"]),
    ("my medicare number is 2123 45670 1", ["2123456701"], ["national_id"]),
    ("social insurance number 130 692 544", ["130692544"], ["national_id"]),
    ("aadhaar 2345 6789 0124", ["234567890124"], ["national_id"]),
    ("my ID number is 8001015009087", ["8001015009087"], ["national_id"]),
    ("passport number 502135326", ["502135326"], ["passport"]),
    ("my passport no. is L898902C3", ["l898902c3"], ["passport"]),
    ("passport: five oh two one three five three two six", ["502135326"], ["passport"]),
    ("driver's license D1234567", ["d1234567"], ["driving_licence"]),
    ("driving licence number MORGA753116SM9IJ", ["morga753116sm9ij"], ["driving_licence"]),
    ("DL# S530-4607-5231", ["s530-4607-5231"], ["driving_licence"]),
    ("tax id 912-70-1234", ["912701234"], ["tax_id"]),
    ("my UTR is 19558 39661", ["1955839661"], ["tax_id"]),
    ("EIN 12-3456789", ["123456789"], ["tax_id"]),
    ("TFN 123 456 782", ["123456782"], ["tax_id"]),
    ("PAN card ABCPE1234F", ["abcpe1234f"], ["tax_id"]),
    ("my ssn is five five five, two four, one two three four", ["555241234"], ["ssn"]),
    ("social security number 219-09-9999", ["219099999"], ["ssn"]),
    # -- IP addresses, licence plates ------------------------------------------------------------------------
    ("my IP is 192.168.10.45", ["192.168.10.45"], ["ip_address"]),
    ("the router said 203.0.113.77 was blocked", ["203.0.113.77"], ["ip_address"]),
    ("IPv6 address 2001:db8:85a3::8a2e:370:7334", ["2001:db8:85a3::8a2e:370:7334"], ["ip_address"]),
    ("licence plate AB12 CDE", ["ab12 cde"], ["licence_plate"]),
    ("my registration is KX19 OPL", ["kx19 opl"], ["licence_plate"]),
    ("license plate 7ABC123", ["7abc123"], ["licence_plate"]),
    ("the car is a red golf, plate number WX-58-FGH", ["wx-58-fgh"], ["licence_plate"]),
    # -- phone numbers in words and other shapes -------------------------------------------------------------
    ("call me on oh seven seven double oh nine double oh one two three", ["07700900123"], ["phone"]),
    (
        "my number is plus four four seven seven double oh nine double oh four five six",
        ["447700900456"],
        ["phone"],
    ),
    ("you can reach me at four one five five five five oh one nine nine", ["4155550199"], ["phone"]),
    ("my cell is (212) 555-0147", ["(212) 555-0147", "555-0147"], ["phone"]),
    ("mobile: 07911 123456", ["07911123456"], ["phone"]),
    # -- PINs and passcodes ----------------------------------------------------------------------------------
    ("my pin is one nine eight four", ["1984"], ["pin"]),
    ("PIN number: 5 5 2 1", ["5521"], ["pin"]),
    # -- account and member numbers --------------------------------------------------------------------------
    ("member number 7734 9921", ["77349921"], ["account_number"]),
    ("my account is nine eight seven six five four three two", ["98765432"], ["account_number"]),
    # -- credentials, every one of a sentence, in any order --------------------------------------------------
    ("my username is jsmith and password hunter2", ["jsmith", "hunter2"], ["credential"]),
    ("password is hunter2, username jsmith", ["hunter2", "jsmith"], ["credential"]),
    ("username: jsmith password: hunter2", ["jsmith", "hunter2"], ["credential"]),
    ("user=jsmith pass=hunter2", ["jsmith", "hunter2"], ["credential"]),
    ("login jsmith pwd hunter2", ["jsmith", "hunter2"], ["credential"]),
    ("my password is Xq9!rTz and my username is bluefalcon", ["xq9!rtz", "bluefalcon"], ["credential"]),
    ("the username and password are jsmith and hunter2", ["jsmith", "hunter2"], ["credential"]),
    ("my password? it's hunter2", ["hunter2"], ["credential"]),
    ("my security answer is fluffy", ["fluffy"], ["credential"]),
    ("my memorable place is Grimsby", ["grimsby"], ["credential"]),
    ("my mum's maiden name was Castellano", ["castellano"], ["credential"]),
    ("first pet's name: Biscuit", ["biscuit"], ["credential"]),
    # -- e-mail addresses, other spellings -------------------------------------------------------------------
    ("my email is john at gmail dot com", ["john at gmail"], ["email"]),
    ("email me at JSMITH AT GMAIL DOT COM", ["jsmith at gmail"], ["email"]),
    (
        "it's john underscore smith at hotmail dot co dot uk",
        ["john underscore smith", "smith at hotmail"],
        ["email"],
    ),
    ("write to j.smith(at)gmail(dot)com", ["j.smith(at)gmail"], ["email"]),
    ("my e-mail is john @ gmail . com", ["john @ gmail"], ["email"]),
    ("send it to jane at the rate yahoo dot com", ["jane at the rate yahoo"], ["email"]),
    ("my email address is j o h n at gmail dot com", ["john at gmail"], ["email"]),
    ("email: jane dash doe at outlook period com", ["jane dash doe", "doe at outlook"], ["email"]),
    ("my email is katie ninety one at yahoo dot co dot uk", ["katie 91 at yahoo"], ["email"]),
    # -- dates of birth, other formats -----------------------------------------------------------------------
    ("date of birth 3-Mar-1980", ["3-mar-1980"], ["date_of_birth"]),
    ("born on 1980/03/03", ["1980/03/03"], ["date_of_birth"]),
    ("DOB: 03.03.80", ["03.03.80"], ["date_of_birth"]),
    ("my birthday is the twenty first of June", ["twenty first of june"], ["date_of_birth"]),
    ("I was born in 1962", ["born in 1962"], ["date_of_birth"]),
    ("born twelve oh three eighty", ["120380"], ["date_of_birth"]),
    ("my date of birth is 19800303", ["19800303"], ["date_of_birth"]),
    ("birth date: July 4, 1976", ["july 4, 1976"], ["date_of_birth"]),
    ("I was born on the 5th of November nineteen seventy five", ["5th of november 1975"], ["date_of_birth"]),
    # -- ages ------------------------------------------------------------------------------------------------
    ("I'm 67 years old", ["67 years"], ["age"]),
    ("I am seventy three years old", ["73 years", "seventy three years"], ["age"]),
    ("my age is 34", ["age is 34"], ["age"]),
    ("aged 58, retired", ["aged 58"], ["age"]),
    # -- addresses, with and without a number ----------------------------------------------------------------
    ("I live on Baker Street", ["baker street"], ["address"]),
    ("flat 3b, Rose Court, Leeds LS6 2AB", ["rose court", "ls6 2ab", "flat 3b"], ["address"]),
    ("send it to PO Box 4521, Springfield", ["box 4521"], ["address"]),
    ("my address is Rose Cottage, Church Lane, Little Snoring", ["rose cottage", "church lane"], ["address"]),
    ("apartment 4B, 77 Elm Grove", ["4b, 77 elm grove", "77 elm grove"], ["address"]),
    ("the postcode is M1 1AE", ["m1 1ae"], ["address"]),
    ("postal code K1A 0B1", ["k1a 0b1"], ["address"]),
    ("I'm at forty two wallaby way, sydney", ["42 wallaby way"], ["address"]),
    ("my home address: 12 Grimmauld Place, London", ["grimmauld place"], ["address"]),
    ("n w one six x e", ["n w one six x e"], ["address"]),
    # -- people, with a cue ----------------------------------------------------------------------------------
    ("yes this is mrs o'brien", ["o'brien"], ["person"]),
    ("my name is José García", ["josé", "garcía"], ["person"]),
    ("the account holder is Priya Natarajan", ["priya", "natarajan"], ["person"]),
    ("my name is mary-jane watson-parker", ["mary-jane", "watson-parker"], ["person"]),
    ("this is Dmitri calling about my bill", ["dmitri"], ["person"]),
    ("my husband's name is Tobias", ["tobias"], ["person"]),
    ("surname Okonkwo, first name Chidi", ["okonkwo", "chidi"], ["person"]),
    ("the name is spelled w a t s o n", ["watson"], ["person"]),
]

#: Names with no cue: masked where dead letters' strict masking applies (text and field names).
UNCUED_NAMES: list[tuple[str, list[str], list[str]]] = [
    ("Katrina Miller", ["katrina", "miller"], ["person"]),
    ("it's Katrina Miller", ["katrina", "miller"], ["person"]),
    ("Sherlock Holmes here", ["sherlock", "holmes"], ["person"]),
    ("katrina miller", ["katrina", "miller"], ["person"]),
    ("Holmes, Sherlock", ["holmes", "sherlock"], ["person"]),
    ("Thanks, Angela.", ["angela"], ["person"]),
    ("ok so Margaret Thompson wants to change her booking", ["margaret", "thompson"], ["person"]),
    ("Sarah Brown, 31926819", ["sarah", "brown", "31926819"], ["person", "account_number"]),
    ("put it under Rebecca please", ["rebecca"], ["person"]),
    ("Hi Daniel", ["daniel"], ["person"]),
]

#: Texts whose only personal data is a bare number (no keyword): ``SHAPED`` (published text, logs,
#: lineage) keeps them by design; dead letters (``STRICT``) mask them.
BARE = frozenset({"the router said 203.0.113.77 was blocked"})
