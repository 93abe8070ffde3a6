"""``video-inst search --server URL``: the query sent to a running ``video-inst serve``.

A one-shot CLI search loads the backbone (seconds) before it can embed a crop; a server has
it loaded, so the CLI posts the same fields to ``POST /search`` and prints the answer as a
local search would. Errors come back as the server's named errors (``{"error": {code,
message}}``), raised here as :class:`RemoteError` with that code.

Example::

    video-inst search --server http://127.0.0.1:8000 --image photo.jpg --box 10,20,200,180 --json
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from video_inst.errors import VideoInstError


class RemoteError(VideoInstError):
    """The server refused the query or could not be reached; ``code`` is the server's code."""

    code = "server_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


def _fields(options: dict[str, Any]) -> dict[str, str]:
    """The CLI's query options as ``POST /search`` form fields (the API's names)."""
    names = {
        "text": "text",
        "track": "track_id",
        "top_k": "top_k",
        "min_score": "min_score",
        "label": "label",
    }
    fields = {api: str(options[cli]) for cli, api in names.items() if options.get(cli) is not None}
    videos = tuple(options.get("video") or ())
    if videos:
        bad = [v for v in videos if not str(v).isdigit()]
        if bad:
            raise RemoteError(
                f"--video with --server takes catalog ids (the server's paths differ): {', '.join(bad)}",
                "invalid_query",
            )
        fields["video_ids"] = ",".join(videos)
    if options.get("box"):
        fields["box"] = str(options["box"])
    if options.get("exemplars"):
        raise RemoteError(
            "--also with --server is not supported: send several images to POST /search", "invalid_query"
        )
    for name in ("positives", "negatives"):
        if options.get(name):
            fields[name] = ",".join(str(t) for t in options[name])
    if options.get("hide_weak"):
        fields["hide_weak"] = "true"
    return fields


def remote_search(
    server: str, options: dict[str, Any], token: str | None, timeout: float = 120.0
) -> dict[str, Any]:
    """POST the query to ``server``'s ``/search``; the answer's JSON (hits, mode, notes, spaces, videos)."""
    import httpx

    url = server.rstrip("/") + "/search"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    fields = _fields(options)
    image = options.get("image")
    try:
        if image:
            path = Path(image)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise RemoteError(
                    f"cannot read the query image {path}: {exc.strerror}", "missing_file"
                ) from None
            response = httpx.post(
                url, data=fields, files={"image": (path.name, data)}, headers=headers, timeout=timeout
            )
        else:
            body: dict[str, Any] = {k: v for k, v in fields.items() if k not in ("box",)}
            for key in ("track_id", "top_k"):
                if key in body:
                    body[key] = int(body[key])
            if "min_score" in body:
                body["min_score"] = float(body["min_score"])
            for key in ("video_ids", "positives", "negatives"):
                if key in body:
                    body[key] = [int(v) for v in body[key].split(",")]
            if "hide_weak" in body:
                body["hide_weak"] = True
            response = httpx.post(url, json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise RemoteError(f"cannot reach the server at {server}: {exc}", "server_unreachable") from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code != 200:
        error = (answer or {}).get("error") if isinstance(answer, dict) else None
        if error:
            raise RemoteError(f"{error.get('message')} (server {response.status_code})", error.get("code"))
        raise RemoteError(f"the server at {server} answered HTTP {response.status_code}")
    if not isinstance(answer, dict) or "hits" not in answer:
        raise RemoteError(f"the server at {server} did not answer a search (no hits in its JSON)")
    return answer
