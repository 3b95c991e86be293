"""One mailbox is one buyer: the spellings of an address that reach the same person share one key."""

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storefront.domain.buyers import InvalidBuyerEmail, buyer_key
from storefront.domain.errors import DomainError

CYRILLIC_A = "\u0430"  # looks like the Latin "a"
GREEK_OMICRON = "\u03bf"  # looks like the Latin "o"


def test_composed_and_decomposed_accents_are_one_buyer():
    composed = unicodedata.normalize("NFC", "José@example.com")
    decomposed = unicodedata.normalize("NFD", "José@example.com")
    assert composed != decomposed

    assert buyer_key(composed) == buyer_key(decomposed) == "josé@example.com"


def test_fullwidth_letters_are_the_plain_letters():
    assert buyer_key("ｊｏｅ@ｅｘａｍｐｌｅ.com") == buyer_key("joe@example.com") == "joe@example.com"
    assert buyer_key("joe＠example．com") == "joe@example.com"


@pytest.mark.parametrize("spelling", ["ann@example.com", "Ann@Example.com", " ANN@EXAMPLE.COM ", "\tann@EXAMPLE.com\n"])
def test_case_and_surrounding_whitespace_do_not_matter(spelling):
    assert buyer_key(spelling) == "ann@example.com"


def test_a_trailing_dot_on_the_domain_does_not_matter():
    assert buyer_key("ann@example.com.") == "ann@example.com"


@pytest.mark.parametrize(
    "look_alike",
    [
        f"{CYRILLIC_A}nn@example.com",  # Cyrillic "а" among Latin letters
        f"j{GREEK_OMICRON}e@example.com",  # Greek "ο" among Latin letters
        "p\u0430yp\u0430l@example.com",
        f"ann+{CYRILLIC_A}@example.com",  # the tag is part of what the buyer typed, and checked too
    ],
)
def test_a_local_part_mixing_alphabets_is_refused(look_alike):
    with pytest.raises(InvalidBuyerEmail) as refusal:
        buyer_key(look_alike)

    assert "one alphabet" in refusal.value.message
    assert isinstance(refusal.value, DomainError)


def test_the_refusal_names_the_alphabets_it_saw():
    with pytest.raises(InvalidBuyerEmail, match="mixes Cyrillic and Latin letters"):
        buyer_key(f"{CYRILLIC_A}nn@example.com")


def test_a_local_part_in_one_other_alphabet_is_a_buyer_of_its_own():
    all_cyrillic = "\u0430\u0440\u0435@example.com"  # "аре", which looks like the Latin "ape"

    assert buyer_key(all_cyrillic) == all_cyrillic
    assert buyer_key(all_cyrillic) != buyer_key("ape@example.com")
    assert buyer_key("ΟΔΥΣΣΕΥΣ@example.gr") == buyer_key("οδυσσευς@example.gr")  # final sigma folds too


def test_digits_punctuation_and_accents_belong_to_no_alphabet():
    assert buyer_key("анна.1990_7@example.com") == "анна.1990_7@example.com"
    assert buyer_key("ann-o'neil.2@example.com") == "ann-o'neil.2@example.com"
    assert buyer_key("zoe\u0308@example.com") == "zoë@example.com"  # a combining mark on a Latin letter


def test_chinese_japanese_and_korean_count_as_one_group():
    assert buyer_key("山田たろう@example.jp") == "山田たろう@example.jp"
    with pytest.raises(InvalidBuyerEmail, match="one alphabet"):
        buyer_key("tanaka太郎@example.jp")


def test_an_international_domain_and_its_punycode_are_one_buyer():
    assert buyer_key("ann@bücher.de") == buyer_key("ann@xn--bcher-kva.de") == "ann@xn--bcher-kva.de"
    assert buyer_key("ann@BÜCHER.DE.") == buyer_key("ann@XN--BCHER-KVA.DE") == "ann@xn--bcher-kva.de"


@pytest.mark.parametrize("domain", ["xn--zz.de", "x..ie", "-x.ie", "x_y.ie", "[192.0.2.1]", "ex ample.com", "."])
def test_a_domain_that_cannot_be_encoded_is_refused(domain):
    with pytest.raises(InvalidBuyerEmail, match="not a valid domain name"):
        buyer_key(f"ann@{domain}")


def test_a_plus_tag_reaches_the_same_mailbox_by_default():
    assert buyer_key("ann+drop@x.ie") == buyer_key("ann@x.ie") == "ann@x.ie"
    assert buyer_key("Ann+Drop+Two@x.ie") == "ann@x.ie"  # from the first "+"
    assert buyer_key("ann＋drop@x.ie") == "ann@x.ie"  # a fullwidth plus is a plus


def test_plus_tags_can_be_kept_apart():
    assert buyer_key("ann+drop@x.ie", ignore_plus_tags=False) == "ann+drop@x.ie"
    assert buyer_key("ann+drop@x.ie", ignore_plus_tags=False) != buyer_key("ann@x.ie", ignore_plus_tags=False)


@pytest.mark.parametrize("address", ["+@x.ie", "+tag@x.ie", "++@x.ie"])
def test_a_plus_that_would_leave_nothing_is_kept(address):
    assert buyer_key(address) == address
    assert buyer_key(address, ignore_plus_tags=False) == address


def test_dots_are_kept_because_only_some_providers_ignore_them():
    assert buyer_key("j.smith@example.com") != buyer_key("jsmith@example.com")


def test_sharp_s_folds_to_ss_before_the_at_but_not_in_the_domain():
    # Casefolding is Unicode's caseless match: "STRASSE" is how "straße" is written in capitals.
    assert buyer_key("STRASSE@example.de") == buyer_key("straße@example.de") == "strasse@example.de"
    # IDNA 2008 keeps "ß": straße.de and strasse.de are different domains, with possibly different owners.
    assert buyer_key("ann@straße.de") == "ann@xn--strae-oqa.de"
    assert buyer_key("ann@straße.de") != buyer_key("ann@strasse.de")


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "   ",
        "ann",
        "ann@",
        "@example.com",
        "@",
        "ann@b@example.com",
        "ann smith@example.com",
        '"ann"@example.com',
        "<ann@example.com>",
        "ann,bob@example.com",
        "ann\u200b@example.com",  # a zero-width space: invisible, yet another key
        "ann\u202e@example.com",  # a right-to-left override would display a different address
        "ann\x00@example.com",
        "\u0301ann@example.com",  # a combining mark with nothing to sit on
        "a" * 65 + "@example.com",
        "ann@" + "a" * 250 + ".com",
        "x" * 100_000,
    ],
)
def test_something_that_is_not_an_address_is_refused(garbage):
    with pytest.raises(InvalidBuyerEmail) as refusal:
        buyer_key(garbage)

    assert refusal.value.message


@pytest.mark.parametrize("not_text", [None, b"ann@example.com", 42])
def test_a_value_that_is_not_text_is_refused(not_text):
    with pytest.raises(InvalidBuyerEmail, match="name@example.com"):
        buyer_key(not_text)


def test_a_key_fits_the_columns_it_is_stored_in():
    longest = "a" * 64 + "@" + "b" * 63 + "." + "b" * 63 + "." + "b" * 58 + ".cc"
    assert len(longest) == 254

    assert buyer_key(longest) == longest
    with pytest.raises(InvalidBuyerEmail, match="too long"):
        buyer_key("a" + longest)
    with pytest.raises(InvalidBuyerEmail, match="too long"):
        buyer_key("ﬃ" * 22 + "@example.com")  # 22 characters typed, 66 once "ﬃ" is written as "ffi"


ADDRESS_CHARACTERS = st.sampled_from(
    list("aAzZ09.+-_'ßéEÉｅＥ＋") + ["e\u0301", "\u0430", "\u0410", "\u03bf", "ſ", "ﬁ", "İ", " "]
)
DOMAINS = st.sampled_from(["example.com", "EXAMPLE.com.", "bücher.de", "xn--bcher-kva.de", "straße.de", "ｅｘ.ie"])


@given(local=st.lists(ADDRESS_CHARACTERS, min_size=1, max_size=12).map("".join), domain=DOMAINS)
def test_a_key_is_its_own_key(local, domain):
    """Whatever spelling made it, a key keyed again is unchanged, so stored keys can be compared with new ones."""
    address = f"{local}@{domain}"
    for ignore_plus_tags in (True, False):
        try:
            key = buyer_key(address, ignore_plus_tags=ignore_plus_tags)
        except InvalidBuyerEmail:
            continue
        assert buyer_key(key, ignore_plus_tags=ignore_plus_tags) == key
        assert key == key.strip() and unicodedata.is_normalized("NFKC", key)


@given(local=st.lists(ADDRESS_CHARACTERS, min_size=1, max_size=12).map("".join), domain=DOMAINS)
def test_whether_an_address_is_valid_does_not_depend_on_plus_tags(local, domain):
    """The form checks validity without knowing the shop's setting; the setting must not change the answer."""
    outcomes = []
    for ignore_plus_tags in (True, False):
        try:
            buyer_key(f"{local}@{domain}", ignore_plus_tags=ignore_plus_tags)
            outcomes.append(None)
        except InvalidBuyerEmail as refusal:
            outcomes.append(refusal.message)
    assert outcomes[0] == outcomes[1]
