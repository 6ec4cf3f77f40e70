from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response


@api_view(["GET"])
def me(request: Request) -> Response:
    """The caller, as DRF's authentication found them: a Django user under either token service."""
    user = request.user
    return Response({"id": user.pk, "username": user.get_username(), "email": user.email})


@api_view(["GET"])
@permission_classes([AllowAny])
def status(request: Request) -> Response:
    return Response({"status": "ok"})
