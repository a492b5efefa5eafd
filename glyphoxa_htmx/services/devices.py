"""Human names for sign-in sessions' browsers: "Firefox on Android", not the raw User-Agent.

Parsing is done by ``ua-parser`` (the maintained uap-core rules), never by our own regexes."""

from __future__ import annotations

import functools

from ua_parser import parse

from glyphoxa_htmx.core.i18n import _, lazy_gettext

UNKNOWN = lazy_gettext("Unknown browser")


def device_name(user_agent: str | None) -> str:
    """'Firefox on Android', 'Chrome on Windows', 'Safari on iPhone' (device for Apple phones and
    tablets, OS otherwise); 'Unknown browser' when nothing is recognised. In the page's language
    (the parsing is cached, the wording isn't)."""
    browser, where = _parsed((user_agent or "").strip())
    if browser and where:
        return _("%(browser)s on %(system)s", browser=browser, system=where)
    return browser or where or str(UNKNOWN)


@functools.lru_cache(maxsize=1024)
def _parsed(ua: str) -> tuple[str, str]:
    """(browser, device or OS) names from the User-Agent; empty when not recognised."""
    if not ua:
        return "", ""
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
    return browser, where
