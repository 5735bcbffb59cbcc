"""Request signing (docs/protocol.md section 1): canonical JSON, the payload and the HMAC.

Pure functions with no I/O. The runner verifies with the same functions, so a client and
the runner can never disagree on what a signature covers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from typing import Any

TIMESTAMP_HEADER = "x-dr-timestamp"
NONCE_HEADER = "x-dr-nonce"
SIGNATURE_HEADER = "x-dr-signature"

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
# Control characters and lone surrogates: what JavaScript's well-formed JSON.stringify escapes.
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\ud800-\udfff]')


def _escape_char(match: re.Match[str]) -> str:
    char = match.group(0)
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _js_string(value: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(_escape_char, value) + '"'


def _js_number(value: float) -> str:
    """Format a float the way JavaScript's Number.prototype.toString does."""
    if math.isnan(value) or math.isinf(value):
        return "null"  # JSON.stringify writes null for NaN and the infinities
    if value == 0:
        return "0"
    # repr gives the shortest digits that round-trip, as JavaScript does; only the layout differs.
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = (int_part + frac_part.rstrip("0")).lstrip("0") or "0"
    # decimal exponent of the first significant digit
    leading_zeros = len(int_part + frac_part) - len((int_part + frac_part).lstrip("0"))
    point = len(int_part) - leading_zeros + (int(exp_text) if exp_text else 0)
    sign = "-" if value < 0 else ""
    if 0 < point <= 21:
        if len(digits) <= point:
            return sign + digits + "0" * (point - len(digits))
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * (-point) + digits
    exponent = point - 1
    exp_sign = "+" if exponent >= 0 else "-"
    head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{head}e{exp_sign}{abs(exponent)}"


def canonical_json(value: Any) -> str:
    """The canonical form of a JSON value: sorted keys, no spaces, JavaScript's escapes and numbers."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        # beyond 2**53 JavaScript holds the nearest double, and prints that
        return str(value) if abs(value) <= 2**53 else _js_number(float(value))
    if isinstance(value, float):
        return _js_number(value)
    if isinstance(value, str):
        return _js_string(value)
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda item: item[0])
        return "{" + ",".join(_js_string(key) + ":" + canonical_json(item) for key, item in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical_json(item) for item in value) + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def canonical_json_bytes(value: Any) -> bytes:
    return canonical_json(value).encode("utf-8", "surrogatepass")


def body_hash(body: bytes) -> str:
    return encode_body_digest(hashlib.sha256(body).digest())


def encode_body_digest(sha256_digest: bytes) -> str:
    """The bodyHash line for a SHA-256 digest computed incrementally over a streamed body."""
    return base64.b64encode(sha256_digest).decode("ascii")


def signing_payload(method: str, path_with_query: str, timestamp: str, nonce: str, body_sha256: str) -> bytes:
    return "\n".join((method.upper(), path_with_query, timestamp, nonce, body_sha256)).encode("utf-8")


def sign(secret: str, payload: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_matches(secret: str, payload: bytes, signature: str) -> bool:
    """Constant-time comparison; a malformed signature is an ordinary mismatch."""
    expected = sign(secret, payload).encode("ascii")
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


def sign_headers(
    secret: str, method: str, path_with_query: str, body: bytes, timestamp: str, nonce: str
) -> dict[str, str]:
    payload = signing_payload(method, path_with_query, timestamp, nonce, body_hash(body))
    return {TIMESTAMP_HEADER: timestamp, NONCE_HEADER: nonce, SIGNATURE_HEADER: sign(secret, payload)}
