"""Image references and the policy's image patterns, compared component by component (pure).

A reference is normalised the way the engine reads it: ``busybox`` is
``docker.io/library/busybox:latest``, ``index.docker.io`` is ``docker.io``, a name with a digest has
no default tag. A pattern is normalised the same way, then its registry, each path component, its
tag and its digest are matched separately with shell globs, so ``*`` never crosses ``/``, ``:`` or
``@``. A ``**`` path component matches any number of components. A pattern without a tag matches
every tag and digest; with a tag it matches only references that carry that tag and no digest (a
digest overrides the tag at the engine). ``sha256:<glob>`` patterns match images named by id.

References the engine would look up as image ids (``sha256:<hex>``, or a bare hex string, which the
engine tries as an id prefix when no such name exists) are ids here too: only id patterns match them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

DEFAULT_REGISTRY = "docker.io"
_LEGACY_REGISTRY = "index.docker.io"
_OFFICIAL_NAMESPACE = "library"
_ID_PREFIX = "sha256:"

_IMAGE_ID = re.compile(r"^(?:sha256:)?([0-9a-f]{1,64})$")
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = re.compile(rf"^{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*$")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = re.compile(rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$")
_TAG = re.compile(r"^\w[\w.-]{0,127}$", re.ASCII)
_DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
_GLOB_TEXT = re.compile(r"^[^\s/@]+$")


@dataclass(frozen=True)
class ImageReference:
    registry: str = DEFAULT_REGISTRY
    path: tuple[str, ...] = ()
    tag: str | None = None
    digest: str | None = None
    image_id: str | None = None  # the hex of an id reference (full or a prefix)

    def __str__(self) -> str:
        if self.image_id is not None:
            return _ID_PREFIX + self.image_id
        text = f"{self.registry}/{'/'.join(self.path)}"
        return text + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


@dataclass(frozen=True)
class _Parts:
    registry: str | None
    path: tuple[str, ...]
    tag: str | None
    digest: str | None


def _split(text: str) -> _Parts:
    """``[registry/]path[:tag][@digest]`` cut where the engine's reference library cuts it."""
    name, _, digest = text.partition("@")
    tag = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
    first, slash, rest = name.partition("/")
    is_registry = slash and (any(c in first for c in ".:") or first == "localhost" or first.lower() != first)
    registry, path = (first, rest) if is_registry else (None, name)
    return _Parts(registry, tuple(path.split("/")), tag, digest if "@" in text else None)


def _normalised_registry(registry: str | None) -> str:
    lowered = (registry or DEFAULT_REGISTRY).lower()
    return DEFAULT_REGISTRY if lowered == _LEGACY_REGISTRY else lowered


def _official(registry: str, path: tuple[str, ...]) -> tuple[str, ...]:
    if registry == DEFAULT_REGISTRY and len(path) == 1 and path[0] != "**":
        return (_OFFICIAL_NAMESPACE, *path)
    return path


def parse_reference(text: str) -> ImageReference:
    """The reference as the engine reads it; ValueError when the engine would refuse it."""
    as_id = _IMAGE_ID.match(text)
    if as_id:
        return ImageReference(image_id=as_id.group(1))
    parts = _split(text)
    if parts.registry is not None and not _REGISTRY.match(parts.registry):
        raise ValueError(f"invalid registry {parts.registry!r}")
    if not all(_PATH_COMPONENT.match(component) for component in parts.path):
        raise ValueError("the repository name must be lowercase letters, digits and separators")
    if parts.tag is not None and not _TAG.match(parts.tag):
        raise ValueError(f"invalid tag {parts.tag!r}")
    if parts.digest is not None and not _DIGEST.match(parts.digest):
        raise ValueError(f"invalid digest {parts.digest!r}")
    registry = _normalised_registry(parts.registry)
    tag = parts.tag if parts.tag is not None or parts.digest is not None else "latest"
    return ImageReference(registry, _official(registry, parts.path), tag, parts.digest)


@dataclass(frozen=True)
class ImagePattern:
    registry: str = DEFAULT_REGISTRY
    path: tuple[str, ...] = ()
    tag: str | None = None  # None: any tag and any digest
    digest: str | None = None
    image_id: str | None = None  # a glob over image ids

    def matches(self, reference: ImageReference) -> bool:
        if self.image_id is not None or reference.image_id is not None:
            return self.image_id is not None and fnmatchcase(reference.image_id or "", self.image_id)
        if not fnmatchcase(reference.registry, self.registry) or not _path_matches(self.path, reference.path):
            return False
        if self.digest is not None:
            if reference.digest is None or not fnmatchcase(reference.digest, self.digest):
                return False
        elif self.tag is not None and reference.digest is not None:
            return False  # the engine would run the digest, whatever the tag says
        return self.tag is None or (reference.tag is not None and fnmatchcase(reference.tag, self.tag))


def _path_matches(patterns: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    if not patterns:
        return not parts
    head, rest = patterns[0], patterns[1:]
    if head == "**":
        return any(_path_matches(rest, parts[index:]) for index in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], head) and _path_matches(rest, parts[1:])


@lru_cache(maxsize=1024)
def parse_pattern(text: str) -> ImagePattern:
    """The pattern, normalised like a reference; ValueError when it has an empty or spaced part."""
    if text.startswith(_ID_PREFIX):
        glob = text[len(_ID_PREFIX) :]
        if not glob or not _GLOB_TEXT.match(glob):
            raise ValueError(f"image pattern {text!r}: an id pattern is sha256:<glob>")
        return ImagePattern(image_id=glob)
    parts = _split(text)
    pieces = [*parts.path, *(p for p in (parts.registry, parts.tag, parts.digest) if p is not None)]
    if not all(_GLOB_TEXT.match(piece) for piece in pieces):
        raise ValueError(f"image pattern {text!r}: every part must be non-empty, without spaces")
    registry = _normalised_registry(parts.registry)
    return ImagePattern(registry, _official(registry, parts.path), parts.tag, parts.digest)


def image_matches(reference: ImageReference, patterns: list[str]) -> bool:
    return any(parse_pattern(pattern).matches(reference) for pattern in patterns)
