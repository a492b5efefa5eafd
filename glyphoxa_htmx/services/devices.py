"""Human names for sign-in sessions' browsers: "Firefox on Android", not the raw User-Agent.

Parsing is done by ``ua-parser`` (the maintained uap-core rules), never by our own regexes."""

from __future__ import annotations

import functools

from ua_parser import parse

UNKNOWN = "Unknown browser"


@functools.lru_cache(maxsize=1024)
def device_name(user_agent: str | None) -> str:
    """'Firefox on Android', 'Chrome on Windows', 'Safari on iPhone' (device for Apple phones and
    tablets, OS otherwise); 'Unknown browser' when nothing is recognised."""
    ua = (user_agent or "").strip()
    if not ua:
        return UNKNOWN
    result = parse(ua[:512])
    browser = result.user_agent.family if result.user_agent and result.user_agent.family != "Other" else ""
    os_name = result.os.family if result.os and result.os.family != "Other" else ""
    device = result.device.family if result.device and result.device.family not in ("Other", "", None) else ""
    if browser.startswith("Mobile Safari") or browser == "Mobile Safari UI/WKWebView":
        browser = "Safari"
    if browser.startswith("Chrome Mobile") or browser == "HeadlessChrome":
        browser = "Chrome"
    if browser in ("Firefox Mobile", "Firefox iOS"):
        browser = "Firefox"
    where = device if device in ("iPhone", "iPad") else os_name
    if where == "Mac OS X":
        where = "macOS"
    if browser and where:
        return f"{browser} on {where}"
    return browser or where or UNKNOWN
