"""A project's own sign-in (social login, SSO, magic links) starting Keyturn sessions: ``start_session``.

Here a trusted caller (an SSO callback, say) names the user by email and proves itself with the shared
secret ``SSO_SECRET``; without that setting the views answer 404. One sync view, one async view.
"""

import hmac
import json
import os

from django.contrib.auth import get_user_model
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from keyturn.django import astart_session, start_session


def _trusted(request: HttpRequest) -> tuple[str, str | None]:
    """The email the caller names, and the OAuth 2.0 client (``client_id``) the session is for, if any."""
    secret = os.environ.get("SSO_SECRET", "")
    if not secret or not hmac.compare_digest(request.headers.get("X-SSO-Secret", ""), secret):
        raise Http404
    body = json.loads(request.body)
    return str(body["email"]), body.get("client_id")


@csrf_exempt
@require_POST
def sso(request: HttpRequest) -> HttpResponse:
    email, client_id = _trusted(request)
    user = get_user_model().objects.filter(email=email, is_active=True).first()
    if user is None:
        return JsonResponse({"detail": "no such user"}, status=404)
    return start_session(request, user, {"amr": ["sso"]}, client_id=client_id)


@csrf_exempt
@require_POST
async def sso_async(request: HttpRequest) -> HttpResponse:
    email, client_id = _trusted(request)
    user = await get_user_model().objects.filter(email=email, is_active=True).afirst()
    if user is None:
        return JsonResponse({"detail": "no such user"}, status=404)
    return await astart_session(request, user, {"amr": ["sso"]}, client_id=client_id)
