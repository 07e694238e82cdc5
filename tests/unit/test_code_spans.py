"""Where a text is code (guardrails/pii/code_spans.py): which words are identifiers, which hits of
the name and place recognizers are dropped there, and which stay."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from guardrails.pii.code_spans import CodeContext, code_hits, code_token


def _covers(text: str, word: str, nth: int = 0, tokens: bool = True) -> bool:
    start = -1
    for _ in range(nth + 1):
        start = text.index(word, start + 1)
    return CodeContext(text).covers(start, start + len(word), tokens)


def _hit(text: str, value: str, entity: str, recognizer: str, nth: int = 0) -> SimpleNamespace:
    start = -1
    for _ in range(nth + 1):
        start = text.index(value, start + 1)
    return SimpleNamespace(
        entity_type=entity, start=start, end=start + len(value), recognition_metadata={"recognizer_name": recognizer}
    )


@pytest.mark.parametrize(
    "token",
    [
        "ParamSpec",
        "getElementById",
        "IOError",
        "snake_case_name",
        "__init__",
        "MAX_RETRIES",
        "os.path.join",
        "setup.py",
        "Split()",
        "str.split(sep)",
        "/usr/lib/python3/dist-packages",
        "C:\\Users\\build\\app.exe",
        "https://docs.python.org/3/library/typing.html",
        "--verbose",
        "$HOME",
        "Optional[str]",
        "key=value",
        "False",
        "None.",
    ],
)
def test_code_shaped_tokens_are_code(token):
    assert code_token(token)


@pytest.mark.parametrize(
    "token",
    [
        "Maria",
        "Gonzalez,",
        "McAllister",
        "MacArthur",
        "DeShawn",
        "O'Brien",
        "J.K.",
        "(Jiahui)",
        "Raises",
        "@Maria",
        "https://maria:secret@example.com/x",  # a URL with user info is not code
    ],
)
def test_words_and_names_are_not_code(token):
    assert not code_token(token)


def test_fenced_code_is_code_but_its_strings_and_comments_are_prose():
    text = (
        "Why does this fail?\n"
        "```python\n"
        "class Split(Base):\n"
        '    owner = "Maria Gonzalez"  # ask Jonas Vogelsang\n'
        "    Raises = None\n"
        "```\n"
        "Thanks, Maria Gonzalez"
    )
    assert _covers(text, "Split")
    assert _covers(text, "Raises")
    assert not _covers(text, "Maria Gonzalez")  # in the string literal
    assert not _covers(text, "Jonas Vogelsang")  # in the comment
    assert not _covers(text, "Maria Gonzalez", nth=1)  # prose after the block


def test_inline_code_rest_roles_and_section_headers_are_code():
    text = "Use `Split` or ``ParamSpec`` with :class:`Sentinel`.\n\nArgs:\n    x: the value\nRaises\n------\n"
    assert _covers(text, "Split")
    assert _covers(text, "Sentinel")
    assert _covers(text, "Args")
    assert _covers(text, "Raises")
    assert not _covers(text, "value")


def test_stack_frames_and_their_source_lines_are_code_the_message_is_not():
    text = (
        "Traceback (most recent call last):\n"
        '  File "/srv/app/worker.py", line 18, in Dispatch\n'
        "    Handler(order).run()\n"
        "KeyError: customer Ingrid Solberg not found"
    )
    assert _covers(text, "Dispatch")
    assert _covers(text, "Handler(order).run()")
    assert not _covers(text, "Ingrid Solberg")


def test_log_prefixes_are_code_up_to_the_message():
    text = (
        "2025-06-24 14:39:43,120 INFO app.worker: Started job for Tamar Cohen\n"
        "1234:M 27 Nov 2026 20:51:01.862 * Ready\n"
        "[10:32:01] Maria: are you there?"
    )
    assert _covers(text, "INFO")
    assert _covers(text, "app.worker:")
    assert not _covers(text, "Tamar Cohen")
    assert not _covers(text, "Maria", tokens=False)  # a speaker after a time, not a logger


def test_a_phone_inside_a_timestamp_and_local_addresses_are_dropped_other_identifiers_stay():
    text = "update-alternatives 2025-06-24 14:39:44: call +49 30 1234567 from 127.0.0.1 or 10.42.17.203"
    results = [
        _hit(text, "2025-06-24 14", "PHONE_NUMBER", "GenericPhoneRecognizer"),
        _hit(text, "+49 30 1234567", "PHONE_NUMBER", "GenericPhoneRecognizer"),
        _hit(text, "127.0.0.1", "IP_ADDRESS", "IpRecognizer"),
        _hit(text, "10.42.17.203", "IP_ADDRESS", "IpRecognizer"),
    ]
    assert code_hits(text, results) == {0, 2}


def test_structured_identifiers_in_code_are_kept():
    text = '```\nsend(to="anna.berg@example.se", card="4111 1111 1111 1111")\n```'
    results = [
        _hit(text, "anna.berg@example.se", "EMAIL_ADDRESS", "EmailRecognizer"),
        _hit(text, "4111 1111 1111 1111", "CREDIT_CARD", "CreditCardRecognizer"),
    ]
    assert code_hits(text, results) == set()


def test_named_entities_in_code_are_dropped_unless_a_cue_found_them_too():
    text = "Set `ParamSpec` first.\n```\nauthor = Fenwick\n```\nMy name is Fenwick Oduya."
    results = [
        _hit(text, "ParamSpec", "PERSON", "SpacyRecognizer"),
        _hit(text, "ParamSpec", "NRP", "SpacyRecognizer"),
        _hit(text, "Fenwick", "PERSON", "NameGazetteerRecognizer"),
        _hit(text, "Fenwick Oduya", "PERSON", "ContextNameRecognizer"),  # the cue: a person is meant
        _hit(text, "Fenwick Oduya", "PERSON", "SpacyRecognizer"),
    ]
    assert code_hits(text, results) == {0, 1, 2}


def test_a_cue_inside_code_is_no_cue():
    text = "Register it.\n\n:param name: Name to register the class under.\n\nArguments:\n    types: the types\n"
    results = [
        _hit(text, "Name", "PERSON", "ContextNameRecognizer"),
        _hit(text, "Arguments", "PERSON", "ContextNameRecognizer"),
    ]
    assert code_hits(text, results) == {0, 1}


def test_words_of_the_trade_are_dropped_in_technical_text_only():
    technical = (
        "# Uncomment the next line to enable `net.ipv4.ip_forward`\n"
        "Supports HTTP Proxy Support on Windows via proxy_url.\n"
        "Ask Marta Kowalczyk before changing it."
    )
    results = [
        _hit(technical, "Uncomment", "PERSON", "SpacyRecognizer"),
        _hit(technical, "Proxy Support", "PERSON", "SpacyRecognizer"),
        _hit(technical, "Windows", "LOCATION", "SpacyRecognizer"),
        _hit(technical, "Marta Kowalczyk", "PERSON", "SpacyRecognizer"),
    ]
    assert code_hits(technical, results) == {0, 1, 2}
    chat = "Hi, I moved to Windows Street last week. Proxy Support told me to write here."
    results = [
        _hit(chat, "Windows", "LOCATION", "SpacyRecognizer"),
        _hit(chat, "Proxy Support", "PERSON", "SpacyRecognizer"),
    ]
    assert code_hits(chat, results) == set()  # no code in the text: spaCy decides as before


def test_a_chunk_that_starts_inside_a_fenced_block_is_read_as_code():
    text = "    Raises = Split()\n```\nThat is all, Maria.\n```python\nParamSpec = 1\n```\n"
    assert _covers(text, "Raises")
    assert not _covers(text, "Maria")
    assert _covers(text, "ParamSpec")
