"""Prometheus's HTTP query API (``GET <base>/api/v1/query?query=…``, an instant query): the
operators' dashboard reads the voice gateway's provider latency and error rates through it.

``query`` answers the result vector as ``[(labels, value)]`` or raises :class:`PrometheusError`
with a code and parameters safe to show (never the URL, which may carry credentials, nor a raw
exception); the service words them in the reader's language."""

from __future__ import annotations

import math
from typing import Any

import requests


class PrometheusError(Exception):
    """``code``: ``timeout`` (seconds), ``connect``, ``request`` (Prometheus unreachable), or
    ``not_prometheus`` (status), ``error_answer`` (kind, detail: Prometheus's own words),
    ``not_vector`` (got): it answered, but not with figures."""

    UNREACHABLE = {"timeout", "connect", "request"}

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code, params)
        self.code = code
        self.params = params
        self.unreachable = code in self.UNREACHABLE


def query(base_url: str, promql: str, *, timeout: float) -> list[tuple[dict[str, str], float]]:
    """One instant-vector query. Values that aren't numbers (NaN from an empty histogram, ±Inf)
    come back as NaN; the caller shows them as "no data"."""
    url = base_url.rstrip("/") + "/api/v1/query"
    try:
        resp = requests.get(url, params={"query": promql}, timeout=timeout, headers={"Accept": "application/json"})
    except requests.Timeout:
        raise PrometheusError("timeout", seconds=round(timeout, 1)) from None
    except requests.ConnectionError:
        raise PrometheusError("connect") from None
    except requests.RequestException:
        raise PrometheusError("request") from None
    try:
        body = resp.json()
    except ValueError:
        raise PrometheusError("not_prometheus", status=resp.status_code) from None
    if not isinstance(body, dict):
        raise PrometheusError("not_prometheus", status=resp.status_code)
    if body.get("status") != "success":
        raise PrometheusError(
            "error_answer", kind=str(body.get("errorType") or "error")[:40], detail=str(body.get("error") or "")[:200]
        )
    data = body.get("data") or {}
    if data.get("resultType") != "vector":
        raise PrometheusError("not_vector", got=str(data.get("resultType"))[:20])
    out: list[tuple[dict[str, str], float]] = []
    for item in data.get("result") or []:
        try:
            raw = item["value"][1]
            value = float(raw)
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        out.append((dict(item.get("metric") or {}), value if math.isfinite(value) else math.nan))
    return out
