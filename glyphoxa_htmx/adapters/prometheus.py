"""Prometheus's HTTP query API (``GET <base>/api/v1/query?query=…``, an instant query): the
operators' dashboard reads the voice gateway's provider latency and error rates through it.

``query`` answers the result vector as ``[(labels, value)]`` or raises :class:`PrometheusError`
with a message safe to show (never the URL, which may carry credentials, nor a raw exception)."""

from __future__ import annotations

import math

import requests


class PrometheusError(Exception):
    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.unreachable = unreachable


def query(base_url: str, promql: str, *, timeout: float) -> list[tuple[dict, float]]:
    """One instant-vector query. Values that aren't numbers (NaN from an empty histogram, ±Inf)
    come back as NaN; the caller shows them as "no data"."""
    url = base_url.rstrip("/") + "/api/v1/query"
    try:
        resp = requests.get(url, params={"query": promql}, timeout=timeout, headers={"Accept": "application/json"})
    except requests.Timeout:
        raise PrometheusError(f"no answer within {timeout:.1f} s", unreachable=True) from None
    except requests.ConnectionError:
        raise PrometheusError("connection failed", unreachable=True) from None
    except requests.RequestException:
        raise PrometheusError("the request failed", unreachable=True) from None
    try:
        body = resp.json()
    except ValueError:
        raise PrometheusError(f"HTTP {resp.status_code} without a Prometheus answer") from None
    if not isinstance(body, dict):
        raise PrometheusError(f"HTTP {resp.status_code} without a Prometheus answer")
    if body.get("status") != "success":
        kind = str(body.get("errorType") or "error")[:40]
        detail = str(body.get("error") or "")[:200]
        raise PrometheusError(f"{kind}: {detail}" if detail else kind)
    data = body.get("data") or {}
    if data.get("resultType") != "vector":
        raise PrometheusError(f"expected a vector, got {str(data.get('resultType'))[:20]}")
    out = []
    for item in data.get("result") or []:
        try:
            raw = item["value"][1]
            value = float(raw)
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        out.append((dict(item.get("metric") or {}), value if math.isfinite(value) else math.nan))
    return out
