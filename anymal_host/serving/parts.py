"""OpenAI Chat Completions messages -> the host's messages, each attachment part an :class:`Attachment` routed
to the modality that accepts it.

Content parts: ``text``; ``image_url`` (a ``data:`` URL; an http(s) URL only when the server allows remote
URLs); ``input_audio`` (``{"data": base64, "format": "wav"}``); ``file`` (``{"file_data": base64 or data: URL,
"filename": "walk.csv"}``, any modality, chosen by the file name). A problem raises :class:`PartError` naming
the message, the part and the fix; the server answers it with 400 (413 for a part over the size limit).
"""

from __future__ import annotations

import base64
import binascii
import urllib.request
from typing import Any, Mapping, Sequence

from ..prompt import Attachment

__all__ = ["PartError", "to_host_messages", "ROLES"]

ROLES = ("system", "developer", "user", "assistant")
_FETCH_TIMEOUT_S = 20


class PartError(ValueError):
    """A message or content part the server cannot use; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status


def to_host_messages(messages: Sequence[Mapping[str, Any]], registry: Any, *, adapters: Mapping[str, str],
                     allow_remote_urls: bool, max_attachment_bytes: int) -> list[dict[str, Any]]:
    """The host's form of ``messages``: text parts as strings, attachment parts as :class:`Attachment`, each
    pinned to the adapter ``adapters`` names for its modality (if any)."""
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)) or not messages:
        raise PartError("messages must be a non-empty list of {'role', 'content'} objects", "messages")
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise PartError(f"{where} must be an object with 'role' and 'content'", where)
        role = message.get("role")
        if role not in ROLES:
            raise PartError(f"{where}.role {role!r} is not supported: use one of {', '.join(ROLES)}", f"{where}.role")
        content = message.get("content")
        if content is None:
            content = ""
        if isinstance(content, str):
            parts: list[Any] = [content]
        elif isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
            parts = [_part(part, f"{where}.content[{j}]", registry, adapters, allow_remote_urls, max_attachment_bytes)
                     for j, part in enumerate(content)]
        else:
            raise PartError(f"{where}.content must be a string or a list of content parts", f"{where}.content")
        out.append({"role": "system" if role == "developer" else role, "content": parts})
    return out


def _part(part: Any, where: str, registry: Any, adapters: Mapping[str, str], allow_remote: bool,
          limit: int) -> Any:
    if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
        raise PartError(f"{where} must be an object with a 'type'", where)
    kind = part["type"]
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise PartError(f"{where} is a text part without a 'text' string", where)
        return part["text"]
    if kind == "image_url":
        url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), Mapping) else None
        if not isinstance(url, str) or not url:
            raise PartError(f"{where} needs image_url.url (a data: URL such as data:image/png;base64,...)", where)
        if url[:5].lower() == "data:":
            _check_size(len(url) * 3 // 4, limit, where)
            return _attachment(registry, "image", url, adapters, where)
        if url.lower().startswith(("http://", "https://")):
            if not allow_remote:
                raise PartError(f"{where}: remote image URLs are refused by this server: send the image as a data: "
                                "URL (data:image/png;base64,...), or start the server with --allow-remote-urls", where)
            return _attachment(registry, "image", _fetch(url, limit, where), adapters, where)
        raise PartError(f"{where}: image_url.url must be a data: URL or an http(s) URL", where)
    if kind == "input_audio":
        audio = part.get("input_audio")
        if not isinstance(audio, Mapping) or not isinstance(audio.get("data"), str):
            raise PartError(f"{where} needs input_audio: {{'data': <base64>, 'format': 'wav' or 'mp3'}}", where)
        _check_size(len(audio["data"]) * 3 // 4, limit, where)
        return _attachment(registry, "audio", dict(audio), adapters, where)
    if kind == "file":
        file = part.get("file")
        if not isinstance(file, Mapping):
            raise PartError(f"{where} needs file: {{'file_data': <base64>, 'filename': 'name.ext'}}", where)
        if "file_id" in file and "file_data" not in file:
            raise PartError(f"{where}: file_id refers to an uploaded file, which this server does not keep: send the "
                            "file itself as file_data (base64) with its filename", where)
        data, name = file.get("file_data"), file.get("filename")
        if not isinstance(data, str) or not isinstance(name, str) or not name:
            raise PartError(f"{where} needs file.file_data (base64 or a data: URL) and file.filename (its extension "
                            "picks the modality)", where)
        _check_size(len(data) * 3 // 4, limit, where)
        try:
            modality = registry.modality_for(name).name
        except Exception as exc:  # UnsupportedAttachmentError: names the plugin to install
            raise PartError(f"{where}: {exc}", where) from None
        if data[:5].lower() == "data:":
            data = data.split(",", 1)[1] if "," in data else ""
        try:
            payload = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise PartError(f"{where}: file.file_data is not valid base64", where) from None
        return _attachment(registry, modality, payload, adapters, where)
    known = "text, image_url, input_audio, file"
    raise PartError(f"{where}: content part type {kind!r} is not supported: use {known}", where)


def _attachment(registry: Any, modality: str, source: Any, adapters: Mapping[str, str], where: str) -> Attachment:
    if modality not in registry.modalities:
        package = f"anymal-plugin-{modality}"
        raise PartError(f"{where}: this server has no {modality} modality: install {package} where it runs", where)
    return Attachment(source=source, modality=modality, adapter=adapters.get(modality))


def _check_size(size: int, limit: int, where: str) -> None:
    if size > limit:
        raise PartError(f"{where} holds about {size >> 20} MiB, over this server's limit of {limit >> 20} MiB per "
                        "attachment: send a smaller file", where, status=413)


def _fetch(url: str, limit: int, where: str) -> bytes:
    """Download ``url`` (at most ``limit`` bytes, within a timeout): only when the server allows it."""
    request = urllib.request.Request(url, headers={"User-Agent": "anymal-serve"})
    try:
        with urllib.request.urlopen(request, timeout=_FETCH_TIMEOUT_S) as response:  # noqa: S310 - opt-in
            data = response.read(limit + 1)
    except OSError as exc:
        raise PartError(f"{where}: could not fetch {url}: {exc}", where) from None
    _check_size(len(data), limit, where)
    return data
