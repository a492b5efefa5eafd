"""Security headers (a strict CSP: scripts and styles only from our own origin, no inline)."""

from __future__ import annotations

from flask import Response, current_app, request

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
    if request.endpoint == "static":
        # Only a URL naming the file's current content hash (asset() adds ?v=<hash>) may be kept
        # forever; a bare or stale URL keeps the file's own `no-cache` (revalidated by ETag), so a
        # deploy never leaves an old file cached under a URL that now means a new one.
        digest = current_app.extensions.get("static_digest")
        if (
            response.status_code in (200, 304)
            and digest is not None
            and request.args.get("v") == digest((request.view_args or {}).get("filename", ""))
        ):
            h["Cache-Control"] = "public, max-age=31536000, immutable"
    elif "Cache-Control" not in h:
        h["Cache-Control"] = "no-store" if request.cookies else "no-cache"
    return response
