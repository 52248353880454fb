"""A minimal client for OpenAI-compatible chat-completions endpoints (Ollama, llama.cpp, vLLM, hosted).

``base_url`` is the API root including its version path, e.g. ``http://127.0.0.1:11434/v1``;
the request goes to ``{base_url}/chat/completions``. The API key is read from the environment
variable the config names, so it never sits in the config file. Every failure (timeout, refused
connection, HTTP error, a reply without text, a stream cut short) raises ``LLMError`` so the caller
can fall back.

``stream`` reads the reply as server-sent events (``data: {...}`` lines ending with ``data: [DONE]``)
and yields its text piece by piece. At most ``max_concurrent`` requests run at once; the others wait
in order of arrival (a bounded wait: ``timeout``).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from .config import LLMSettings, base_url_problem

log = logging.getLogger(__name__)
DONE = object()  # the ``data: [DONE]`` event
NOT_AN_EVENT = object()  # a line that is no part of server-sent events (an HTML page, a JSON body)


class LLMError(Exception):
    """The endpoint could not give a usable reply."""


class FairSlots:
    """A semaphore that admits waiters in the order they arrived (threading.Semaphore does not)."""

    def __init__(self, size: int):
        self.size = size
        self._busy = 0
        self._queue: deque[object] = deque()
        self._cond = threading.Condition()

    @contextmanager
    def slot(self, wait: float) -> Iterator[None]:
        ticket = object()
        deadline = time.monotonic() + wait
        with self._cond:
            self._queue.append(ticket)
            while self._queue[0] is not ticket or self._busy >= self.size:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._queue.remove(ticket)
                    self._cond.notify_all()
                    raise LLMError(f"no free slot for the language model within {wait:g} s")
                self._cond.wait(left)
            self._queue.popleft()
            self._busy += 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)


class ChatClient:
    def __init__(self, settings: LLMSettings, transport: httpx.BaseTransport | None = None):
        if not settings.base_url or not settings.model:
            raise LLMError("[llm] base_url and model must be set for mode = 'llm'")
        if problem := base_url_problem(settings.base_url):
            raise LLMError(f"[llm] base_url: {problem}")
        self.settings = settings
        self.url = settings.base_url.rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(settings.api_key_env, "") if settings.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._has_key = bool(key)
        host = httpx.URL(settings.base_url).host
        if settings.api_key_env and not key and not _is_local(host):
            # Said once at start: otherwise every answer falls back with an HTTP 401 and nothing says why.
            log.warning(
                "[llm] api_key_env names $%s, which is not set: requests to %s go without an API key "
                '(set it, or api_key_env = "" for an endpoint that needs none)',
                settings.api_key_env,
                host,
            )
        self.slots = FairSlots(max(settings.max_concurrent, 1))
        # One pooled client per answerer: the bot asks many questions against the same endpoint.
        self._http = httpx.Client(headers=headers, timeout=settings.timeout, transport=transport, trust_env=False)

    def _payload(self, messages: list[dict[str, str]], stream: bool) -> dict:
        return {
            "model": self.settings.model,
            "messages": messages,
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
            "stream": stream,
        }

    def complete(self, messages: list[dict[str, str]]) -> str:
        with self.slots.slot(self.settings.timeout):
            try:
                response = self._http.post(self.url, json=self._payload(messages, False))
            except httpx.TimeoutException as exc:
                raise LLMError(f"timed out after {self.settings.timeout:g} s") from exc
            except httpx.ConnectError as exc:
                raise LLMError(f"cannot connect to {self.url}: {exc}") from exc
            except httpx.HTTPError as exc:
                raise LLMError(f"request failed: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code != 200:
            raise self._refused(response.status_code, response.text)
        return _content(response)

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        """The reply's text in pieces as the model writes it; LLMError on any failure, also midway.

        No piece arrives within ``first_token_timeout`` of sending, or the whole reply takes longer
        than ``timeout``: LLMError. Waiting for a free slot does not count against either.
        """
        with self.slots.slot(self.settings.timeout):
            yield from self._stream(messages)

    def _stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        first, total = self.settings.first_token_timeout, self.settings.timeout
        started = time.monotonic()
        # Each read may wait up to the first-token limit: a server reads the whole prompt before it
        # sends its headers, and a stream that goes silent that long afterwards has stalled.
        timeout = httpx.Timeout(min(first, total), connect=min(first, total, 10.0))
        got_text = finished = seen_event = False
        garbage = ""  # the first line that was no event, for the error if none ever comes
        try:
            with self._http.stream("POST", self.url, json=self._payload(messages, True), timeout=timeout) as response:
                if response.status_code != 200:
                    raise self._refused(response.status_code, response.read().decode(errors="replace"))
                if _is_json(response):  # a server that ignores "stream": the whole reply at once
                    response.read()
                    yield _content(response)
                    return
                for line in response.iter_lines():
                    elapsed = time.monotonic() - started
                    if not got_text and elapsed > first:
                        raise LLMError(f"no answer within {first:g} s")
                    if elapsed > total:
                        raise LLMError(f"the answer took longer than {total:g} s")
                    event = _event(line)
                    if event is NOT_AN_EVENT:
                        if not seen_event and not garbage:
                            garbage = line.strip()
                        continue
                    seen_event = True
                    if event is DONE:
                        return
                    piece, reason = event
                    finished = finished or reason is not None
                    if piece:
                        got_text = True
                        yield piece
        except httpx.TimeoutException as exc:
            limit = "its next words" if got_text else "an answer"
            raise LLMError(f"timed out waiting for {limit} ({min(first, total):g} s)") from exc
        except httpx.ConnectError as exc:  # nothing was streamed: the server is not there
            raise LLMError(f"cannot connect to {self.url}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise LLMError(f"the stream broke off: {exc.__class__.__name__}: {exc}") from exc
        if not seen_event and garbage:
            raise LLMError(f"not a chat-completions stream: {garbage[:200]!r}")
        if not finished:  # a clean close after a finish_reason is a complete reply (some servers send no [DONE])
            raise LLMError("the stream ended before the answer did")

    def _refused(self, status: int, body: str) -> LLMError:
        """The error for a reply other than 200, with what to check where the status says it."""
        hint = ""
        if status in (401, 403):
            name = self.settings.api_key_env
            if not name:
                hint = " (the endpoint wants an API key: name its environment variable in [llm] api_key_env)"
            elif not self._has_key:
                hint = f" (the endpoint wants an API key: ${name}, which [llm] api_key_env names, is not set)"
            else:
                hint = f" (the endpoint refused the API key in ${name})"
        elif status == 404:
            hint = f" (no chat-completions API at {self.url}: check [llm] base_url, e.g. …/v1, and model)"
        return LLMError(f"HTTP {status}{hint}: {' '.join(body.split())[:200]}")

    def close(self) -> None:
        self._http.close()


def _event(line: str) -> tuple[str, str | None] | object:
    """One server-sent-events line: (text, finish reason or None), or DONE at ``data: [DONE]``."""
    line = line.strip()
    if not line or line.startswith((":", "event:", "id:", "retry:")):
        return "", None  # blank separators, comments (": ping"), the other fields of an event
    if not line.startswith("data:"):
        return NOT_AN_EVENT
    data = line[5:].strip()
    if data == "[DONE]":
        return DONE
    try:
        event = json.loads(data)
    except ValueError as exc:
        raise LLMError(f"malformed stream event: {data[:200]!r}") from exc
    if isinstance(event, dict) and "error" in event:
        raise LLMError(f"the endpoint reported an error: {str(event['error'])[:200]}")
    try:
        choices = event["choices"]
        if not choices:
            return "", None  # usage-only events (stream_options) carry no choice
        choice = choices[0]
        content = (choice.get("delta") or {}).get("content")
        reason = choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise LLMError(f"malformed stream event: {data[:200]!r}") from exc
    return (content if isinstance(content, str) else ""), reason


def _is_local(host: str) -> bool:
    """A loopback or private address, where a server of one's own (Ollama, llama.cpp) needs no key."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def _is_json(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


def _content(response: httpx.Response) -> str:
    try:
        data = response.json()
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LLMError(f"malformed reply: {response.text[:200]!r}") from exc
    if not isinstance(content, str) or not content.strip():
        raise LLMError("the reply has no text")
    return content.strip()
