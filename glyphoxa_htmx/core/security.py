"""Security headers (a strict CSP: scripts and styles only from our own origin, no inline)."""

from __future__ import annotations

from flask import Response, request

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https://cdn.discordapp.com "
    "https://avatars.githubusercontent.com https://lh3.googleusercontent.com; media-src 'self' blob: data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)


def apply(response: Response, *, hsts: bool) -> Response:
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if hsts:
        h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if request.path.startswith("/static/"):
        h.setdefault("Cache-Control", "public, max-age=31536000, immutable")
    elif "Cache-Control" not in h:
        h["Cache-Control"] = "no-store" if request.cookies else "no-cache"
    return response
