import pytest

from mlcycle.redaction import MASK, redact, redact_status

PLANTED = [
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI"),
    ("export AWS_SESSION_TOKEN: FwoGZXIvYXdzEJr", "FwoGZXIvYXdzEJr"),
    ("connecting to https://admin:s3cr3tpass@minio.local:9000/bucket", "s3cr3tpass"),
    ('{"secretKey": "hunter2hunter2"}', "hunter2hunter2"),
    ("--password=correcthorse", "correcthorse"),
    ("Authorization: Bearer abcdefghijklmnop", "abcdefghijklmnop"),
    ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJl read", "eyJhbGciOiJSUzI1NiJ9"),
    ("key id AKIAIOSFODNN7EXAMPLE leaked", "AKIAIOSFODNN7EXAMPLE"),
    ("the secret value is plain-in-the-log-1234", "plain-in-the-log-1234"),  # from the Secret itself
]


@pytest.mark.parametrize(("text", "secret"), PLANTED)
def test_planted_credentials_are_masked(text, secret):
    out = redact(text, ["plain-in-the-log-1234"])
    assert secret not in out and MASK in out


def test_ordinary_messages_are_left_alone_and_long_ones_are_cut():
    for text in ("spec.storage.secretRef: Secret ns/absent (spec.storage.secretRef) does not exist",
                 "check the S3 access key and secret key", "pod w-0 exited with code 3: loss is NaN"):
        assert redact(text) == text
    assert len(redact("x" * 5000)) == 1024
    assert redact("false true", ["tru"]) == "false true"  # too short to be a credential


def test_status_messages_and_condition_messages_are_redacted():
    status = {"phase": "Failed", "message": "AWS_SECRET_ACCESS_KEY=abcdef123",
              "conditions": [{"type": "Ready", "status": "False", "message": "leaked sekrit-value here"}]}
    out = redact_status(status, ["sekrit-value"])
    assert "abcdef123" not in out["message"] and "sekrit-value" not in out["conditions"][0]["message"]
    assert out["phase"] == "Failed" and status["message"] == "AWS_SECRET_ACCESS_KEY=abcdef123"
