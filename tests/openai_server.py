"""A real OpenAI-compatible HTTP server for tests (standard library only).

Tests of anything that talks to an OpenAI-compatible endpoint (generators,
judges, moderation) start this server on 127.0.0.1 and point the real
``openai`` client (or any HTTP client) at ``server.base_url``.  Nothing is
mocked on the client side: requests go over TCP and come back as genuine HTTP
responses, including scripted faults (429, 5xx, hangs, malformed bodies, resets).

Usage::

    with FakeOpenAIServer(lambda body: "7") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        server.fail_next(1, status=429)          # first call -> RateLimitError
        ...
        assert server.requests[-1]["headers"]["authorization"] == "Bearer sk-test"

Endpoints (all under ``/v1``):

* ``POST /chat/completions`` -- ``responder(body)`` gives each choice's text;
  it is called once per choice with ``body`` plus ``"_choice_index": i``.
  ``n`` and ``model`` are honoured; ``max_tokens`` / ``max_completion_tokens``
  truncate the reply to that many whitespace words (``finish_reason="length"``).
* ``POST /completions`` -- same, for legacy prompts; ``prompt`` may be a string
  or a list of strings (``n`` choices per prompt).  The responder gets the body
  with ``prompt`` replaced by the single prompt string, plus ``"_choice_index"``
  and ``"_prompt_index"``.
* ``POST /moderations`` -- keyword-rule scores in OpenAI's response shape, one
  result per input (string or list).
* ``GET /models`` (and ``GET /models/<id>``) -- one model.

Tokens are counted as whitespace-separated words.  Streaming is not supported
(``stream: true`` gets a 400).
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["FakeOpenAIServer", "default_responder", "moderation_scores"]

DEFAULT_MODEL = "fake-model"

# --------------------------------------------------------------------------- helpers


def _content_text(content: Any) -> str:
    """Text of a chat message ``content`` (a string or a list of content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return " ".join(parts)
    return str(content)


def _count_tokens(text: str) -> int:
    return len(text.split())


def default_responder(body: dict) -> str:
    """Deterministic reply: ``"Reply to: <last user message>"`` (or the prompt)."""
    if "messages" in body:
        last = ""
        for msg in body.get("messages") or []:
            if isinstance(msg, dict) and msg.get("role") == "user":
                last = _content_text(msg.get("content"))
        return f"Reply to: {last}"
    return f"Reply to: {_content_text(body.get('prompt'))}"


# Moderation: category -> trigger words.  Score 0.9 when any trigger word is in
# the text, else 0.01.
_MODERATION_KEYWORDS: dict[str, frozenset[str]] = {
    "harassment": frozenset(
        [
            "idiot",
            "stupid",
            "moron",
            "loser",
            "dumb",
            "pathetic",
            "worthless",
            "hate",
            "kill",
            "hurt",
        ]
    ),
    "harassment/threatening": frozenset(["kill", "hurt", "murder", "stab", "shoot"]),
    "hate": frozenset(["hate", "vermin", "subhuman"]),
    "hate/threatening": frozenset(["exterminate"]),
    "illicit": frozenset(["steal", "shoplift", "hack", "meth", "launder", "counterfeit"]),
    "illicit/violent": frozenset(["bomb", "explosive", "gun", "weapon"]),
    "self-harm": frozenset(["suicide", "cutting", "selfharm"]),
    "self-harm/intent": frozenset(["suicide"]),
    "self-harm/instructions": frozenset(),
    "sexual": frozenset(["sex", "sexual", "nude", "porn"]),
    "sexual/minors": frozenset(),
    "violence": frozenset(
        [
            "kill",
            "hurt",
            "murder",
            "attack",
            "bomb",
            "shoot",
            "stab",
            "beat",
            "torture",
            "blood",
            "weapon",
            "gun",
        ]
    ),
    "violence/graphic": frozenset(["blood", "gore", "torture"]),
}
MODERATION_CATEGORIES: tuple[str, ...] = tuple(_MODERATION_KEYWORDS)
HIGH_SCORE = 0.9
LOW_SCORE = 0.01


def moderation_scores(text: str) -> dict[str, float]:
    """The server's keyword rule: category -> score (0.9 on a trigger word, else 0.01)."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    return {
        cat: (HIGH_SCORE if words & kws else LOW_SCORE) for cat, kws in _MODERATION_KEYWORDS.items()
    }


class _DefaultStatus(int):
    """Marks ``fail_next``'s status as not given (behaves as 500)."""

    def __repr__(self) -> str:
        return "500"


_DEFAULT_STATUS = _DefaultStatus(500)


@dataclass
class _Fault:
    status: int | None  # None: answer normally (after hang_s)
    body: str | None  # raw body to send instead of a JSON response
    hang_s: float
    retry_after: float | None
    reset: bool = False  # close the connection with a TCP reset, answering nothing


# --------------------------------------------------------------------------- server


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class FakeOpenAIServer:
    """Serves /v1/chat/completions, /v1/completions, /v1/moderations and /v1/models on 127.0.0.1:<free port>.

    ``responder(body) -> str`` produces assistant text (default: :func:`default_responder`).
    ``latency_s`` is slept before every answer.
    ``requests`` records every request received as
    ``{"path", "method", "body" (parsed JSON or None), "headers" (dict, lower-case keys), "time"}``;
    any API key is accepted.
    """

    def __init__(
        self,
        responder: Callable[[dict], str] | None = None,
        *,
        latency_s: float = 0.0,
        model: str = DEFAULT_MODEL,
    ) -> None:
        self.responder: Callable[[dict], str] = responder or default_responder
        self.latency_s = float(latency_s)
        self.model = model
        self.requests: list[dict] = []
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.host = "127.0.0.1"
        self.port: int | None = None

    # ------------------------------------------------------------------ public API

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeOpenAIServer is not started")
        return f"http://{self.host}:{self.port}/v1"

    def fail_next(
        self,
        n: int,
        status: int | None = _DEFAULT_STATUS,
        body: str | None = None,
        hang_s: float = 0.0,
        *,
        retry_after: float | None = 0,
    ) -> None:
        """Queue faults for the next ``n`` requests (any endpoint), in order.

        * ``fail_next(n)`` / ``fail_next(n, 429)``: answer ``status`` with an
          OpenAI-style JSON error; 429 and 5xx carry ``Retry-After: <retry_after>``
          (0 by default; pass ``retry_after=None`` to omit it).  A positive
          ``retry_after`` also sends ``retry-after-ms``.
        * ``body="..."``: answer **200** with that raw (e.g. malformed) body
          (unless ``status`` is also given, which is then used).
        * ``hang_s=...``: sleep that long first (to trip client timeouts); then,
          if ``status`` was left at its default, answer normally, else answer
          ``status``.  Pass ``status=None`` to always answer normally after
          the hang.
        """
        explicit_status = status is not _DEFAULT_STATUS
        if not explicit_status:
            status = 500
        if body is not None:
            eff_status: int | None = status if explicit_status and status is not None else 200
        elif hang_s > 0:
            eff_status = status if explicit_status else None
        else:
            eff_status = status
        fault = _Fault(eff_status, body, float(hang_s), retry_after)
        with self._lock:
            self._faults.extend(fault for _ in range(int(n)))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def requests_to(self, path_suffix: str) -> list[dict]:
        """Recorded requests whose path ends with ``path_suffix`` (e.g. "/chat/completions")."""
        with self._lock:
            return [r for r in self.requests if r["path"].endswith(path_suffix)]

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        handler = _make_handler(self)
        self._httpd = _HTTPServer((self.host, 0), handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeOpenAIServer:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping in hang_s / latency_s
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals

    def _record(self, entry: dict) -> _Fault | None:
        with self._lock:
            self.requests.append(entry)
            return self._faults.popleft() if self._faults else None

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _chat(self, body: dict) -> dict:
        n = int(body.get("n") or 1)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        model = body.get("model") or self.model
        prompt_tokens = sum(
            _count_tokens(_content_text(m.get("content")))
            for m in body.get("messages") or []
            if isinstance(m, dict)
        )
        choices, completion_tokens = [], 0
        for i in range(n):
            text, finish = _truncate(str(self.responder({**body, "_choice_index": i})), limit)
            completion_tokens += _count_tokens(text)
            choices.append(
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "finish_reason": finish,
                    "logprobs": None,
                }
            )
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": _usage(prompt_tokens, completion_tokens),
            "system_fingerprint": "fp_fake",
        }

    def _completions(self, body: dict) -> dict:
        n = int(body.get("n") or 1)
        limit = body.get("max_tokens")
        model = body.get("model") or self.model
        prompt = body.get("prompt", "")
        prompts = (
            prompt
            if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt)
            else [prompt]
        )
        prompts = [_content_text(p) if not isinstance(p, str) else p for p in prompts] or [""]
        choices, completion_tokens = [], 0
        for p_idx, p in enumerate(prompts):
            for i in range(n):
                req = {**body, "prompt": p, "_choice_index": i, "_prompt_index": p_idx}
                text, finish = _truncate(str(self.responder(req)), limit)
                completion_tokens += _count_tokens(text)
                choices.append(
                    {"text": text, "index": len(choices), "logprobs": None, "finish_reason": finish}
                )
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": _usage(sum(_count_tokens(p) for p in prompts), completion_tokens),
        }

    def _moderations(self, body: dict) -> dict:
        raw = body.get("input", "")
        inputs = raw if isinstance(raw, list) else [raw]
        results = []
        for item in inputs:
            if isinstance(item, dict):
                text = item.get("text") if isinstance(item.get("text"), str) else ""
            else:
                text = _content_text(item)
            scores = moderation_scores(text)
            categories = {c: s >= 0.5 for c, s in scores.items()}
            results.append(
                {
                    "flagged": any(categories.values()),
                    "categories": categories,
                    "category_scores": scores,
                    "category_applied_input_types": {c: ["text"] for c in scores},
                }
            )
        return {
            "id": f"modr-{uuid.uuid4().hex[:24]}",
            "model": body.get("model") or "omni-moderation-latest",
            "results": results,
        }

    def _model_obj(self, model_id: str | None = None) -> dict:
        return {"id": model_id or self.model, "object": "model", "created": 0, "owned_by": "fake"}


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _truncate(text: str, limit: Any) -> tuple[str, str]:
    try:
        limit_i = int(limit) if limit is not None else None
    except (TypeError, ValueError):
        limit_i = None
    if limit_i is not None and limit_i >= 0:
        words = text.split()
        if len(words) > limit_i:
            return " ".join(words[:limit_i]), "length"
    return text, "stop"


def _error_payload(status: int, message: str) -> dict:
    types = {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_exceeded",
    }
    return {
        "error": {
            "message": message,
            "type": types.get(status, "server_error"),
            "param": None,
            "code": None,
        }
    }


def _make_handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeOpenAI/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        # ---------------------------------------------------------------
        def _send(
            self,
            status: int,
            payload: bytes,
            headers: dict[str, str] | None = None,
            content_type: str = "application/json",
        ) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
                self.close_connection = True  # client gave up (e.g. it timed out)

        def _send_json(self, status: int, obj: dict, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(obj).encode("utf-8"), headers)

        def _handle(self, method: str) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body: Any = None
            bad_json = False
            if raw:
                try:
                    body = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    bad_json = True
            headers = {k.lower(): v for k, v in self.headers.items()}
            fault = server._record(
                {
                    "path": path,
                    "method": method,
                    "body": body,
                    "headers": headers,
                    "time": time.time(),
                }
            )

            server._sleep(server.latency_s)
            if fault is not None:
                server._sleep(fault.hang_s)
                if server._stopping.is_set():
                    self.close_connection = True
                    return
                if fault.reset:  # SO_LINGER 0: closing sends RST instead of FIN
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                if fault.body is not None:
                    self._send(fault.status or 200, fault.body.encode("utf-8"))
                    return
                if fault.status is not None:
                    extra: dict[str, str] = {}
                    if fault.retry_after is not None and (
                        fault.status == 429 or fault.status >= 500
                    ):
                        extra["Retry-After"] = f"{fault.retry_after:g}"
                        if fault.retry_after > 0:
                            extra["retry-after-ms"] = f"{fault.retry_after * 1000:g}"
                    self._send_json(
                        fault.status,
                        _error_payload(fault.status, f"Injected fault: HTTP {fault.status}"),
                        extra,
                    )
                    return
                # else: a pure hang, answer normally below

            if bad_json:
                self._send_json(400, _error_payload(400, "Request body is not valid JSON"))
                return
            if body is None:
                body = {}
            try:
                if method == "GET" and path == "/v1/models":
                    self._send_json(200, {"object": "list", "data": [server._model_obj()]})
                elif method == "GET" and path.startswith("/v1/models/"):
                    self._send_json(200, server._model_obj(path[len("/v1/models/") :]))
                elif method == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
                    if not isinstance(body, dict):
                        self._send_json(400, _error_payload(400, "Body must be a JSON object"))
                    elif body.get("stream"):
                        self._send_json(
                            400,
                            _error_payload(400, "stream=true is not supported by FakeOpenAIServer"),
                        )
                    elif path == "/v1/chat/completions":
                        if not isinstance(body.get("messages"), list):
                            self._send_json(400, _error_payload(400, "'messages' is required"))
                        else:
                            self._send_json(200, server._chat(body))
                    else:
                        self._send_json(200, server._completions(body))
                elif method == "POST" and path == "/v1/moderations":
                    if not isinstance(body, dict) or "input" not in body:
                        self._send_json(400, _error_payload(400, "'input' is required"))
                    else:
                        self._send_json(200, server._moderations(body))
                else:
                    self._send_json(404, _error_payload(404, f"No route for {method} {path}"))
            except Exception as exc:  # noqa: BLE001 - a test responder raised: surface as a 500
                self._send_json(500, _error_payload(500, f"responder error: {exc!r}"))

    return Handler
