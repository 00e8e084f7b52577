"""hilci.util.redact: what may be printed of text and URLs from elsewhere."""

from __future__ import annotations

from hilci.util.redact import mask, safe_text, scrub_urls, strip_control, strip_userinfo


def test_userinfo_is_stripped_from_urls():
    assert strip_userinfo("https://alice:tok3n@ci.example:8443/job/x/?a=1") == "https://ci.example:8443/job/x/?a=1"
    assert strip_userinfo("https://ci.example/") == "https://ci.example/"
    assert scrub_urls("see https://a:b@x.example/1 and s3://key:secret@bucket/p") == \
        "see https://x.example/1 and s3://bucket/p"


def test_control_sequences_are_stripped_and_text_kept():
    text = "\x1b[1;31mFAIL\x1b[0m\t\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\ \x1b]0;title\x07done\r\n\x1b[?25l\x9b2Jx"
    assert strip_control(text) == "FAIL\tlink done\r\nx"


def test_secrets_are_masked_longest_first(monkeypatch):
    assert mask("abcdefgh abcdefghij", ["abcdefgh", "abcdefghij"]) == "**** ****"
    assert mask("short abc", ["abc"]) == "short abc"  # too short to mask safely
    monkeypatch.setenv("MY_API_TOKEN", "zzz-123456")
    assert safe_text("token zzz-123456\x1b[0m") == "token ****"
