"""The JSON POST a job's callback URL receives when the job ends, retried with backoff.

Network errors, timeouts and 5xx answers are retried (exponential backoff, a few
attempts); a 4xx answer is final. The outcome is kept in the job's counts
(``callback: "sent 200"`` or ``"failed: ..."``); a callback that fails never fails the job.

Example::

    post_json("http://127.0.0.1:8080/done", {"job_id": "…", "status": "done"}, timeout=5, attempts=3)
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

import httpx
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from video_inst.catalog.db import Catalog
from video_inst.config import Settings
from video_inst.jobs import results, state

log = logging.getLogger(__name__)


class CallbackRejected(Exception):
    """The receiver answered 4xx: retrying cannot help."""


def valid_callback_url(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)


def post_json(
    url: str, payload: dict[str, Any], *, timeout: float, attempts: int, backoff_s: float = 0.5
) -> int:
    """POST ``payload``; returns the final status code or raises the last error."""
    for attempt in Retrying(
        retry=retry_if_exception(_retryable),
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_exponential(multiplier=backoff_s, max=30),
        reraise=True,
    ):
        with attempt:
            response = httpx.post(url, json=payload, timeout=timeout)
            if response.status_code >= 400:
                if response.status_code < 500:
                    raise CallbackRejected(f"{url} answered {response.status_code}")
                response.raise_for_status()
            return response.status_code
    raise AssertionError("unreachable")  # pragma: no cover


def payload_for(catalog: Catalog, job_id: str) -> dict[str, Any]:
    """The body: the job row, plus per-file outcomes for an archive."""
    job = state.require_job(catalog, job_id)
    body: dict[str, Any] = {"event": "job.ended", **job}
    if job["kind"] == "ingest":
        body["result"] = results.result_of(job)
    elif job["kind"] == "archive":
        body["report"] = results.report_of(catalog, job_id)
    return body


def notify(catalog: Catalog, settings: Settings, job_id: str) -> str:
    """Send the job's callback, if it has one; returns what happened (also stored on the job)."""
    job = state.require_job(catalog, job_id)
    url = job["callback_url"]
    if not url:
        return "none"
    try:
        code = post_json(
            url,
            payload_for(catalog, job_id),
            timeout=settings.callback_timeout_s,
            attempts=settings.callback_attempts,
        )
        outcome = f"sent {code}"
    except (httpx.HTTPError, CallbackRejected) as exc:
        outcome = f"failed: {exc}"
        log.warning("job %s: callback to %s %s", job_id, url, outcome)
    state.merge_counts(catalog, job_id, {"callback": outcome})
    return outcome
