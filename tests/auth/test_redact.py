"""Keys echoed by a server are masked in messages, without garbling the words around them."""

from cohortsync.secrets import redact


def test_a_long_key_is_masked_wherever_it_appears() -> None:
    key = "0f1e2d3c-4b5a-6978-8a9b-abcdef012345"
    text = f"Partner not enabled for client with client secret: {key}; url=/x?s={key}"
    assert redact(text, key) == (
        "Partner not enabled for client with client secret: ****2345; url=/x?s=****2345"
    )


def test_a_short_key_is_masked_only_where_it_stands_alone() -> None:
    assert redact("network error for key k", "k") == "network error for key ****"
    assert redact('{"client_secret": "k"}', "k") == '{"client_secret": "****"}'


def test_no_key_leaves_the_text_alone() -> None:
    assert redact("network error", "") == "network error"
