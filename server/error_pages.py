"""Error pages for people: a refused or failed page request, in Chinese and English, saying what to do next.

Handlers raise aiohttp's HTTP exceptions with a plain `code: detail` text, which scripts and encoders
read as they are. A browser navigating to a page (it accepts text/html) gets the same status with a
styled page instead: what happened, and what to do about it (an expired link from a QR code: ask
the duty officer for a new one). API, media and socket paths keep their plain answers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from server.pages import TEMPLATES

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MACHINE_PREFIXES = ("/api/", "/whip", "/whep", "/ws", "/command/ws", "/command/photos", "/static/", "/metrics", "/healthz")


@dataclass(frozen=True)
class Explanation:
    """What a person is told about one error code: title, why, what next, and the way on."""

    title: tuple[str, str]
    why: tuple[str, str]
    next: tuple[str, str]
    action: str = "home"   # "home", "login" or "none"


ASK_FOR_LINK = ("请联系值班员重新发送链接或二维码。", "Ask the duty officer for a new link or QR code.")
EXPLANATIONS: dict[str, Explanation] = {
    "invalid_token": Explanation(("链接无效", "This link does not work"), ("链接不完整或已被修改。", "The link is incomplete or was changed."), ASK_FOR_LINK, "none"),
    "token_lifetime_too_long": Explanation(("链接无效", "This link does not work"), ("链接的有效期超出允许范围。", "The link is valid for longer than allowed."), ASK_FOR_LINK, "none"),
    "token_expired": Explanation(("链接已过期", "This link has expired"), ("设备链接只在限定时间内有效。", "Device links work for a limited time only."), ASK_FOR_LINK, "none"),
    "token_revoked": Explanation(("链接已停用", "This link was withdrawn"), ("管理员已停用此链接（例如设备遗失）。", "An administrator withdrew it (a lost device, for example)."), ASK_FOR_LINK, "none"),
    "token_not_yet_valid": Explanation(("链接尚未生效", "This link is not valid yet"), ("链接的生效时间还没到，或本机时间不准。", "Its start time has not come yet, or this device's clock is wrong."), ("请检查本机时间，稍后再试。", "Check this device's clock and try again shortly."), "none"),
    "unauthenticated": Explanation(("请先登录", "Please sign in"), ("此页面需要登录或设备链接。", "This page needs a sign-in or a device link."), ("请用您的账号登录。", "Sign in with your account."), "login"),
    "access_withdrawn": Explanation(("权限已变更", "Your access changed"), ("您的账号或设备已不再允许访问此处。", "Your account or device may no longer use this."), ("请联系值班员或管理员。", "Ask the duty officer or an administrator."), "home"),
    "forbidden": Explanation(("没有权限", "Not allowed"), ("您的账号没有此功能的权限。", "Your account is not allowed to use this."), ("如需使用，请联系管理员开通。", "Ask an administrator if you need it."), "home"),
    "wrong_room": Explanation(("不能进入此会商室", "Not your room"), ("您的账号不属于此会商室。", "Your account is not a member of this room."), ("请返回选择您的会商室。", "Go back and choose one of your rooms."), "home"),
    "not_found": Explanation(("页面不存在", "Page not found"), ("地址有误，或内容已被删除。", "The address is wrong or the item is gone."), ("请返回首页重新进入。", "Go back to the home page."), "home"),
    "bad_request": Explanation(("请求有误", "Something in the request is wrong"), ("页面收到的内容不完整或格式不对。", "What the page was sent is incomplete or malformed."), ("请返回上一页检查后重试。", "Go back, check and try again."), "home"),
    "rate_limited": Explanation(("操作过于频繁", "Too many attempts"), ("短时间内请求太多。", "Too many requests in a short time."), ("请稍等片刻再试。", "Wait a moment and try again."), "home"),
    "store_unavailable": Explanation(("服务暂时不可用", "Service briefly unavailable"), ("服务器暂时无法读写记录。", "The server cannot reach its records right now."), ("请稍后刷新页面；如持续出现请联系值班员。", "Reload in a little while; tell the duty officer if it persists."), "home"),
    "internal": Explanation(("服务器出错", "Server error"), ("服务器处理时出错，已记录。", "The server failed and logged it."), ("请刷新重试；如持续出现请联系值班员。", "Reload and try again; tell the duty officer if it persists."), "home"),
}
BY_STATUS = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 429: "rate_limited", 503: "store_unavailable"}


def explain(status: int, text: str) -> tuple[str, str, Explanation]:
    """(code, detail, explanation) of an error answer whose text is `code: detail`."""
    head, _, detail = text.strip().partition(":")
    code = head.strip() if head.strip().replace("_", "").isalnum() and detail else ""
    if code.startswith("unknown_"):
        code = "not_found"
    if code not in EXPLANATIONS:
        code = BY_STATUS.get(status, "internal" if status >= 500 else "bad_request")
    return code, detail.strip() or text.strip(), EXPLANATIONS[code]


def wants_page(request: web.Request) -> bool:
    """Whether a person's browser is navigating to a page (not a script, an encoder or a socket)."""
    if request.method not in ("GET", "HEAD", "POST") or request.path.startswith(MACHINE_PREFIXES):
        return False
    return "text/html" in request.headers.get("Accept", "")


def render(request: web.Request, status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    """The styled page for an error answer."""
    code, detail, why = explain(status, text)
    html = request.app[TEMPLATES].get_template("error.html").render(status=status, code=code, detail=detail, e=why)
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    for name in ("Retry-After", "WWW-Authenticate"):
        if headers and name in headers:
            response.headers[name] = headers[name]
    return response


@web.middleware
async def error_page_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a browser's refused or failed page request with a page it can read."""
    if not wants_page(request):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return render(request, exc.status, exc.text or exc.reason, dict(exc.headers))
    except Exception:
        logger.exception("page failed path=%s", request.path)
        return render(request, 500, "internal: internal error")


def install(app: web.Application) -> None:
    """Add the middleware outermost: it also sees the security middleware's refusals (the security
    headers are added as any response is prepared, these pages included)."""
    app.middlewares.insert(0, error_page_middleware)
