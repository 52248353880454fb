"""A minimal client for OpenAI-compatible chat-completions endpoints (Ollama, llama.cpp, vLLM, hosted).

``base_url`` is the API root including its version path, e.g. ``http://127.0.0.1:11434/v1``;
the request goes to ``{base_url}/chat/completions``. The API key is read from the environment
variable the config names, so it never sits in the config file. Every failure (timeout, refused
connection, HTTP error, a reply without text) raises ``LLMError`` so the caller can fall back.
"""

from __future__ import annotations

import os

import httpx

from .config import LLMSettings


class LLMError(Exception):
    """The endpoint could not give a usable reply."""


class ChatClient:
    def __init__(self, settings: LLMSettings, transport: httpx.BaseTransport | None = None):
        if not settings.base_url or not settings.model:
            raise LLMError("[llm] base_url and model must be set for mode = 'llm'")
        self.settings = settings
        self.url = settings.base_url.rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(settings.api_key_env, "") if settings.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        # One pooled client per answerer: the bot asks many questions against the same endpoint.
        self._http = httpx.Client(headers=headers, timeout=settings.timeout, transport=transport, trust_env=False)

    def complete(self, messages: list[dict[str, str]]) -> str:
        payload = {
            "model": self.settings.model,
            "messages": messages,
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
            "stream": False,
        }
        try:
            response = self._http.post(self.url, json=payload)
        except httpx.TimeoutException as exc:
            raise LLMError(f"timed out after {self.settings.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise LLMError(f"request failed: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code != 200:
            raise LLMError(f"HTTP {response.status_code}: {response.text[:200]}")
        return _content(response)

    def close(self) -> None:
        self._http.close()


def _content(response: httpx.Response) -> str:
    try:
        data = response.json()
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LLMError(f"malformed reply: {response.text[:200]!r}") from exc
    if not isinstance(content, str) or not content.strip():
        raise LLMError("the reply has no text")
    return content.strip()
