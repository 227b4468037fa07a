"""A log of prompts and answers in SQLite, as ``llm`` keeps one: what ``anymal chat`` asked, with which
attachments, LLM and adapters, and what came back; conversations to continue with ``anymal chat -c``.

The database is ``$ANYMAL_HOME/logs.db`` (``ANYMAL_LOGS_PATH`` overrides it). Logging is on by default;
``anymal logs off`` writes a ``logs-off`` file beside it, ``anymal logs on`` removes it, and ``--no-log`` /
``--log`` override either for one command. Only the standard library's ``sqlite3`` is used; the schema
version is kept in ``PRAGMA user_version`` so a later anymal can migrate an older file.

Attachments are logged by absolute path with their SHA-256, not copied: a continued conversation reads them
again and refuses a file that has gone or changed since, rather than answer about different data.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from adapters_hub.files import file_sha256

from .errors import AnymalError
from .paths import anymal_home

__all__ = ["LogStore", "LoggedAttachment", "LoggedResponse", "Conversation", "logs_path", "logging_enabled",
           "set_logging", "LogError"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,          -- a random hex id
    name TEXT NOT NULL,           -- the first prompt, shortened
    llm TEXT NOT NULL,            -- the LLM that answered
    created_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    llm TEXT NOT NULL,
    system TEXT,                  -- the system message, if any
    prompt TEXT NOT NULL,
    attachments TEXT NOT NULL,    -- JSON: [{"path", "sha256", "modality"}]
    adapters TEXT NOT NULL,       -- JSON: {modality: adapter that encoded its attachments}
    options TEXT NOT NULL,        -- JSON: max_tokens, temperature, top_p, seed
    response TEXT NOT NULL,
    finish_reason TEXT NOT NULL,  -- stop, length or content_filter
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    duration_ms INTEGER,
    datetime_utc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_conversation ON responses(conversation_id, id);
"""


class LogError(AnymalError):
    """The log cannot be read or written, or a logged conversation cannot be continued."""


def logs_path() -> Path:
    """``$ANYMAL_LOGS_PATH``, else ``$ANYMAL_HOME/logs.db``."""
    override = os.environ.get("ANYMAL_LOGS_PATH")
    return Path(override).expanduser() if override else anymal_home() / "logs.db"


def _off_marker() -> Path:
    return logs_path().with_name("logs-off")


def logging_enabled() -> bool:
    """Whether ``anymal chat`` logs by default (``anymal logs off`` turns it off)."""
    return not _off_marker().exists()


def set_logging(on: bool) -> None:
    """Turn default logging on or off (the ``logs-off`` file beside the database)."""
    marker = _off_marker()
    if on:
        marker.unlink(missing_ok=True)
    else:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("anymal chat does not log while this file exists; `anymal logs on` removes it\n")


@dataclass(frozen=True)
class LoggedAttachment:
    """An attachment as logged: where it was, its content hash, and its modality when one was named."""

    path: str
    sha256: str
    modality: str | None = None

    @classmethod
    def of(cls, path: str | os.PathLike[str], modality: str | None = None) -> "LoggedAttachment":
        resolved = Path(path).expanduser().resolve()
        return cls(str(resolved), file_sha256(resolved), modality)

    def check(self, conversation_id: str) -> None:
        """Refuse to reuse a file that has gone or changed since it was logged."""
        path = Path(self.path)
        if not path.is_file():
            raise LogError(f"conversation {conversation_id} used the attachment {self.path}, which no longer exists: "
                           "put it back, or start a new conversation (leave out -c / --cid)")
        if file_sha256(path) != self.sha256:
            raise LogError(f"conversation {conversation_id} used the attachment {self.path}, which has changed since: "
                           "restore it, or start a new conversation (leave out -c / --cid)")


@dataclass(frozen=True)
class LoggedResponse:
    """One prompt and its answer."""

    id: int
    conversation_id: str
    llm: str
    system: str | None
    prompt: str
    attachments: list[LoggedAttachment]
    adapters: dict[str, str]
    options: dict[str, Any]
    response: str
    finish_reason: str
    prompt_tokens: int | None
    completion_tokens: int | None
    duration_ms: int | None
    datetime_utc: str

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["attachments"] = [a.__dict__ for a in self.attachments]
        return data


@dataclass(frozen=True)
class Conversation:
    """A conversation and its responses, oldest first."""

    id: str
    name: str
    llm: str
    created_utc: str
    responses: list[LoggedResponse] = field(default_factory=list)

    def messages(self) -> list[dict[str, Any]]:
        """The conversation as host messages (system first, then each user turn with its attachments before
        its text, and each answer), every attachment checked to be the file that was logged."""
        from .prompt import Attachment

        out: list[dict[str, Any]] = []
        if self.responses and self.responses[0].system:
            out.append({"role": "system", "content": self.responses[0].system})
        for response in self.responses:
            parts: list[Any] = []
            for attachment in response.attachments:
                attachment.check(self.id)
                parts.append(Attachment(source=attachment.path, modality=attachment.modality))
            parts.append(response.prompt)
            out.append({"role": "user", "content": parts})
            out.append({"role": "assistant", "content": response.response})
        return out


class LogStore:
    """The SQLite log. ``LogStore()`` opens (creating if needed) :func:`logs_path`."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else logs_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LogError(f"{self.path} was written by a newer anymal (log schema {version}, this one reads "
                               f"{SCHEMA_VERSION}): upgrade anymal, or point ANYMAL_LOGS_PATH at another file")
            with self._db:
                self._db.executescript(_SCHEMA)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise LogError(f"cannot use the log {self.path}: {exc}. Move the file away (a new log is started), or "
                           "run with --no-log") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "LogStore":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def new_conversation(self, name: str, llm: str) -> str:
        """Start a conversation; returns its id."""
        conversation_id = uuid.uuid4().hex[:16]
        with self._db:
            self._db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?)",
                             (conversation_id, _shorten(name), llm, _now()))
        return conversation_id

    def record(self, conversation_id: str, *, llm: str, prompt: str, response: str, finish_reason: str,
               system: str | None = None, attachments: Sequence[LoggedAttachment] = (),
               adapters: dict[str, str] | None = None, options: dict[str, Any] | None = None,
               prompt_tokens: int | None = None, completion_tokens: int | None = None,
               duration_ms: int | None = None) -> int:
        """Log one prompt and its answer in ``conversation_id``; returns the response id."""
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO responses (conversation_id, llm, system, prompt, attachments, adapters, options, "
                "response, finish_reason, prompt_tokens, completion_tokens, duration_ms, datetime_utc) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, llm, system, prompt, json.dumps([a.__dict__ for a in attachments]),
                 json.dumps(adapters or {}), json.dumps(options or {}), response, finish_reason, prompt_tokens,
                 completion_tokens, duration_ms, _now()))
        return int(cursor.lastrowid)

    def latest_conversation_id(self) -> str | None:
        row = self._db.execute("SELECT conversation_id FROM responses ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def conversation(self, conversation_id: str) -> Conversation:
        """A conversation with all its responses; :class:`LogError` naming ``anymal logs`` if there is none."""
        row = self._db.execute("SELECT id, name, llm, created_utc FROM conversations WHERE id = ?",
                               (conversation_id,)).fetchone()
        if row is None:
            raise LogError(f"no conversation {conversation_id!r} in {self.path}: `anymal logs` lists them")
        responses = list(self._responses("WHERE conversation_id = ? ORDER BY id", (conversation_id,)))
        return Conversation(*row, responses=responses)

    def latest(self, count: int = 3, conversation_id: str | None = None) -> list[LoggedResponse]:
        """The ``count`` most recent responses (of one conversation if given), oldest first; 0 = all."""
        where, args = ("WHERE conversation_id = ?", [conversation_id]) if conversation_id else ("", [])
        limit = f" LIMIT {int(count)}" if count else ""
        return list(reversed(list(self._responses(f"{where} ORDER BY id DESC{limit}", tuple(args)))))

    def _responses(self, clause: str, args: tuple[Any, ...]) -> Iterator[LoggedResponse]:
        columns = ("id, conversation_id, llm, system, prompt, attachments, adapters, options, response, "
                   "finish_reason, prompt_tokens, completion_tokens, duration_ms, datetime_utc")
        for row in self._db.execute(f"SELECT {columns} FROM responses {clause}", args):
            values = list(row)
            values[5] = [LoggedAttachment(**a) for a in json.loads(values[5])]
            values[6] = json.loads(values[6])
            values[7] = json.loads(values[7])
            yield LoggedResponse(*values)


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
