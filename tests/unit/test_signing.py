"""Request signing against the shared vectors, and canonical JSON against hand-computed forms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from docker_runner.auth.checks import SignedHeaders, check_signature
from docker_runner_client._signing import body_hash, canonical_json, sign, sign_headers, signing_payload

VECTORS = json.loads((Path(__file__).parent / "protocol-vectors.json").read_text())["vectors"]


def _body_bytes(vector: dict[str, Any]) -> bytes:
    return b"" if vector["body"] is None else canonical_json(vector["body"]).encode()


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_canonical_body_matches_vector(vector: dict[str, Any]) -> None:
    """The canonical form of each vector's body is exactly the string the vector hashed."""
    assert _body_bytes(vector).decode() == vector["canonicalBody"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_client_signature_matches_vector(vector: dict[str, Any]) -> None:
    """The client computes each vector's body hash and signature."""
    digest = body_hash(_body_bytes(vector))
    assert digest == vector["bodyHash"]
    payload = signing_payload(vector["method"], vector["pathWithQuery"], vector["timestamp"], vector["nonce"], digest)
    assert sign(vector["secret"], payload) == vector["signature"]
    headers = sign_headers(
        vector["secret"],
        vector["method"],
        vector["pathWithQuery"],
        _body_bytes(vector),
        vector["timestamp"],
        vector["nonce"],
    )
    assert headers["x-dr-signature"] == vector["signature"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_runner_verifies_vector(vector: dict[str, Any]) -> None:
    """The runner accepts each vector's signature, and refuses it under another secret or path."""
    headers = SignedHeaders(vector["timestamp"], vector["nonce"], vector["signature"])
    args = (vector["method"], vector["pathWithQuery"], headers, [vector["bodyHash"]])
    assert check_signature([vector["secret"]], *args)
    assert check_signature(["some-other-secret-that-is-long-enough", vector["secret"]], *args)
    assert not check_signature(["some-other-secret-that-is-long-enough"], *args)
    wrong_path = (vector["method"], vector["pathWithQuery"] + "x", headers, [vector["bodyHash"]])
    assert not check_signature([vector["secret"]], *wrong_path)


@pytest.mark.parametrize("signature", ["", "not base64!", "AAAA", "=" * 44, "é" * 44])
def test_malformed_signature_is_a_mismatch(signature: str) -> None:
    """A malformed or wrong-length signature is an ordinary mismatch, never an exception."""
    headers = SignedHeaders("1", "n", signature)
    assert not check_signature(["s" * 32], "GET", "/", headers, [body_hash(b"")])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": 2}, '{"a":2,"b":1}'),
        ({"a": {"d": [], "c": {}}}, '{"a":{"c":{},"d":[]}}'),
        ({"é": 1, "z": 2, "Z": 3}, '{"Z":3,"z":2,"é":1}'),
        ('quote" back\\ nl\n tab\t bs\b ff\f cr\r', '"quote\\" back\\\\ nl\\n tab\\t bs\\b ff\\f cr\\r"'),
        ("\x00\x1f\x7f", '"\\u0000\\u001f\x7f"'),
        ("é ✓ \u2028 😀", '"é ✓ \u2028 😀"'),
        ("lone \ud800", '"lone \\ud800"'),
        (
            [1, 1.0, -0.0, 1.5, 0.1, 1e21, 1e-7, 123456789012345680000.0, 1e-6],
            "[1,1,0,1.5,0.1,1e+21,1e-7,123456789012345680000,0.000001]",
        ),
        ([2**53, 2**53 + 2, 10**22], "[9007199254740992,9007199254740994,1e+22]"),
        ([True, False, None], "[true,false,null]"),
        ({"emoji😀": 1, "a\U0001f600": 0, "a\uffff": 2}, '{"a\uffff":2,"a😀":0,"emoji😀":1}'),
    ],
)
def test_canonical_json(value: Any, expected: str) -> None:
    """Canonical JSON matches JavaScript's JSON.stringify with keys sorted by code point."""
    assert canonical_json(value) == expected
