"""Who counts as one buyer: the key that per-customer limits, holds, orders and the buyer's advisory lock share.

One mailbox must be one buyer, however its address is typed, so `buyer_key()` reduces the spellings a person or a
mail server treats as the same to one string:

- Surrounding whitespace goes, and the address is Unicode NFKC-normalised: composed and decomposed accents ("é" and
  "e" + U+0301), fullwidth letters typed through an input method ("ｅ"), ligatures and styled letters become the
  plain character a reader sees.
- The local part is case-folded (`str.casefold`, Unicode's rule for caseless matching, then NFKC again so the key
  stays normalised). Casefolding maps "ß" to "ss", so "straße" and "STRASSE" are one buyer: a reader takes them for
  the same name, and when a rule is unsure, merging is the safe side for a limit (two addresses share one limit)
  while splitting lets one person past it.
- The domain is mapped as IDNA 2008 with UTS #46 (the mapping mail software uses, which also folds case) and
  written in its ASCII form, without a trailing dot, so "bücher.de", "BÜCHER.DE." and "xn--bcher-kva.de" are one
  key. It is deliberately *not* `str.casefold`ed: "straße.de" and "strasse.de" are different registrable domains
  (possibly different owners), and folding "ß" there would change where mail goes.
- "+tag" sub-addressing (RFC 5233; Gmail, Outlook, iCloud, Fastmail, Proton...) reaches the same mailbox, so by
  default everything from the first "+" is dropped ("ann+drop@x.ie" is "ann@x.ie"), unless that would leave the
  local part empty ("+tag@x.ie" stays as it is). `ignore_plus_tags=False` keeps tags for a shop that wants them.
- Dots in the local part are kept. Gmail ignores them, but most providers and company servers do not
  ("j.smith" and "jsmith" are often two people), and a list of dot-blind providers goes stale and cannot see
  Google-hosted custom domains without a DNS lookup, which a key computed on every reserve must not do.

And refuses, with `InvalidBuyerEmail` and a message fit to show next to the field:

- anything that is not `local@domain` (no "@", two of them, an empty side), whitespace, control, invisible or
  unassigned characters anywhere, and the ASCII characters an unquoted address cannot hold (quoted local parts are
  not accepted, as on the form);
- a domain that IDNA cannot encode (bad Punycode, characters no domain can hold, empty labels);
- a local part that mixes letters of different scripts, such as Latin with a Cyrillic "а" (U+0430) or a Greek
  "ο": those look like another buyer's address. A local part wholly in one script, Latin or not, is fine.
  A character's script is the first word of its Unicode name (LATIN, CYRILLIC, GREEK...); digits, punctuation,
  symbols, combining accents and modifier letters belong to none. Han, Hiragana, Katakana, Bopomofo and Hangul
  count as one East Asian group, since they are written together and none passes for a Latin letter.
- an address longer than mail allows once normalised (64 characters before the "@", 254 in all), so the key
  always fits the 320-character columns it is stored in.

Finer syntax (where dots may go, a dot in the domain, special-use domains) is the form's `Email()` validator's job:
`buyer_key()` is pure string work with no DNS, the same answer for the same input, cheap enough for every request,
and `buyer_key(buyer_key(x)) == buyer_key(x)`.
"""

from __future__ import annotations

import functools
import string
import unicodedata

import idna

from storefront.domain.errors import DomainError

# RFC 5321: 64 octets before the "@", 254 for a whole address in a mail path. Counted in characters here.
LOCAL_PART_MAX_LENGTH = 64
ADDRESS_MAX_LENGTH = 254
DOMAIN_MAX_LENGTH = 253
# Refuse absurd input before any Unicode work, so a megabyte of text costs nothing (NFKC may also expand it).
INPUT_MAX_LENGTH = 1024

# ASCII an unquoted local part may hold (RFC 5322 atext, and dots); non-ASCII is judged by Unicode category.
LOCAL_PART_ASCII = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~.")

EAST_ASIAN = "EAST_ASIAN"
# First words of Unicode names that are not scripts, or name a script under another word.
SCRIPT_OF_NAME_WORD = {
    "CJK": EAST_ASIAN,
    "HIRAGANA": EAST_ASIAN,
    "KATAKANA": EAST_ASIAN,
    "KATAKANA-HIRAGANA": EAST_ASIAN,  # the long-vowel mark "ー"
    "HENTAIGANA": EAST_ASIAN,
    "IDEOGRAPHIC": EAST_ASIAN,  # iteration marks such as "々"
    "VERTICAL": EAST_ASIAN,  # kana repeat marks
    "MASU": EAST_ASIAN,
    "BOPOMOFO": EAST_ASIAN,
    "HANGUL": EAST_ASIAN,
    "TURNED": "LATIN",  # "Ⅎ", "ⅎ"
    "ROMAN": "LATIN",  # "ↄ", the one Roman numeral letter NFKC leaves alone
}
# Combining marks and modifier letters take the script of the letter they sit on (Unicode's Inherited/Common).
SCRIPTLESS_NAME_WORDS = frozenset({"COMBINING", "MODIFIER", "CARON", "VARIATION", "VEDIC", "MUSICAL"})
SCRIPT_DISPLAY_NAMES = {EAST_ASIAN: "Chinese, Japanese or Korean"}

NOT_AN_ADDRESS = "Enter an email address like name@example.com."


class InvalidBuyerEmail(DomainError):
    """The email address cannot identify a buyer: not an address, or one that could pass for another."""


def buyer_key(email: str, *, ignore_plus_tags: bool = True) -> str:
    """Return the one key every spelling of this buyer's mailbox shares; raise InvalidBuyerEmail if there is none."""
    if not isinstance(email, str):
        raise InvalidBuyerEmail(NOT_AN_ADDRESS)
    text = email.strip()
    if len(text) > INPUT_MAX_LENGTH:
        raise InvalidBuyerEmail("This email address is too long.")
    # Before splitting: NFKC turns a fullwidth "＠" into "@".
    text = unicodedata.normalize("NFKC", text)
    local, at, domain = text.partition("@")
    if not at or not local or not domain or "@" in domain:
        raise InvalidBuyerEmail(NOT_AN_ADDRESS)

    local = unicodedata.normalize("NFKC", local.casefold())
    check_local_part_characters(local)
    check_one_script(local)
    ascii_domain = ascii_domain_of(domain)
    if len(local) > LOCAL_PART_MAX_LENGTH or len(local) + 1 + len(ascii_domain) > ADDRESS_MAX_LENGTH:
        raise InvalidBuyerEmail("This email address is too long.")

    if ignore_plus_tags:
        mailbox = local.split("+", 1)[0]
        if mailbox:
            local = mailbox
    return f"{local}@{ascii_domain}"


def check_local_part_characters(local: str) -> None:
    for position, character in enumerate(local):
        if character.isascii():
            if character not in LOCAL_PART_ASCII:
                raise InvalidBuyerEmail(
                    f"The part before the @ cannot contain {describe(character)}. Check your email address."
                )
            continue
        category = unicodedata.category(character)
        if category[0] in "LNPS" or (category[0] == "M" and position > 0):
            continue
        if category in {"Cf", "Zl", "Zp", "Zs"}:
            raise InvalidBuyerEmail(
                "Your email address contains a space or an invisible character; please type it again."
            )
        raise InvalidBuyerEmail("Your email address contains a character an address cannot have; please check it.")


def describe(character: str) -> str:
    if character.isspace():
        return "spaces"
    if not character.isprintable():
        return "control characters"
    return f"“{character}”"


def script_of(character: str) -> str | None:
    """The script a letter or mark is written in, or None for characters that belong to no script."""
    if unicodedata.category(character)[0] not in "LM":
        return None
    name = unicodedata.name(character, "")
    if not name:
        return "UNNAMED"  # letters this Python's Unicode data names only by range (e.g. Tangut); never mixable
    word = name.split(" ", 1)[0]
    if word in SCRIPTLESS_NAME_WORDS:
        return None
    return SCRIPT_OF_NAME_WORD.get(word, word)


def check_one_script(local: str) -> None:
    scripts: list[str] = []
    for character in local:
        script = script_of(character)
        if script is not None and script not in scripts:
            scripts.append(script)
    if len(scripts) > 1:
        names = [SCRIPT_DISPLAY_NAMES.get(script, script.title()) for script in scripts]
        mixed = ", ".join(names[:-1]) + " and " + names[-1]
        raise InvalidBuyerEmail(
            f"The part before the @ mixes {mixed} letters, so it could pass for someone else's address. "
            "Please type your email address using one alphabet."
        )


# Buyers share a handful of domains, and every reserve asks twice (its rate limit and its claim): IDNA once each.
@functools.lru_cache(maxsize=1024)
def ascii_domain_of(domain: str) -> str:
    """The domain as IDNA ASCII, lowercase, without a trailing dot."""
    # Checked before IDNA: decoding a long Punycode label takes time quadratic in its length.
    if len(domain) > DOMAIN_MAX_LENGTH + 1:
        raise InvalidBuyerEmail("The part after the @ is too long to be a domain name.")
    try:
        mapped = idna.uts46_remap(domain, std3_rules=False, transitional=False)
        if mapped.endswith("."):
            mapped = mapped[:-1]
        encoded = idna.encode(mapped).decode("ascii")
    except (idna.IDNAError, UnicodeError) as error:
        raise InvalidBuyerEmail("The part after the @ is not a valid domain name. Check your email address.") from error
    return encoded.lower()
