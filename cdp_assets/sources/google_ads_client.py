"""The Google Ads client library side of the extract: opening the service, reading streams, and what
its errors mean (retry, wait, stop, fail).

Kept apart from `google_ads` (config and the dlt source) because the library takes about a second to
import: the code location imports the source to build its assets, and only a run that extracts needs
the client.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import grpc
from google.ads.googleads.client import GoogleAdsClient
from google.ads.googleads.errors import GoogleAdsException
from google.ads.googleads.interceptors import ExceptionInterceptor, MetadataInterceptor
from google.ads.googleads.v26.errors.types.errors import GoogleAdsFailure
from google.ads.googleads.v26.errors.types.internal_error import InternalErrorEnum
from google.ads.googleads.v26.errors.types.quota_error import QuotaErrorEnum
from google.ads.googleads.v26.services.services.google_ads_service import GoogleAdsServiceClient
from google.ads.googleads.v26.services.services.google_ads_service.transports import GoogleAdsServiceGrpcTransport
from google.api_core import exceptions as core_exceptions
from google.oauth2.credentials import Credentials

from cdp_assets.sources.google_ads import API_VERSION, GoogleAdsConfig, GoogleAdsError
from cdp_assets.sources.policy import ApiPolicy, Decision, Retry, Stop

TOKEN_URI = "https://oauth2.googleapis.com/token"
ADWORDS_SCOPE = "https://www.googleapis.com/auth/adwords"
FAILURE_KEY = f"google.ads.googleads.{API_VERSION}.errors.googleadsfailure-bin"
# The library's own channel options: big metadata (failures) and big stream messages (10,000 rows).
_CHANNEL_OPTIONS = [("grpc.max_metadata_size", 16 * 1024 * 1024), ("grpc.max_receive_message_length", 64 * 1024 * 1024)]

_RETRYABLE = (
    core_exceptions.ResourceExhausted,
    core_exceptions.InternalServerError,
    core_exceptions.ServiceUnavailable,
    core_exceptions.DeadlineExceeded,
)
_RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)
_QUOTA = QuotaErrorEnum.QuotaError
# Per-customer rate and short-term query cost: they pass. The token's daily operations and long-term
# query cost do not pass within a run: waiting would only burn the run's time.
_QUOTA_WAIT = frozenset({_QUOTA.RESOURCE_TEMPORARILY_EXHAUSTED, _QUOTA.EXCESSIVE_SHORT_TERM_QUERY_RESOURCE_CONSUMPTION})
_QUOTA_STOP = frozenset(
    {_QUOTA.RESOURCE_EXHAUSTED, _QUOTA.EXCESSIVE_LONG_TERM_QUERY_RESOURCE_CONSUMPTION, _QUOTA.ACCESS_PROHIBITED}
)
_INTERNAL_RETRY = frozenset(
    {
        InternalErrorEnum.InternalError.INTERNAL_ERROR,
        InternalErrorEnum.InternalError.TRANSIENT_ERROR,
        InternalErrorEnum.InternalError.DEADLINE_EXCEEDED,
    }
)


# ---------------------------------------------------------------------------------------------- errors


def ads_failure(exc: BaseException) -> tuple[GoogleAdsFailure | None, str | None]:
    """The GoogleAdsFailure behind an error, and the request id.

    The library turns a failure into GoogleAdsException only for statuses other than INTERNAL and
    RESOURCE_EXHAUSTED; for those two it raises google.api_core's exception, and the failure (a quota
    error, say) is still in the trailing metadata of the call, so look there too.
    """
    if isinstance(exc, GoogleAdsException):
        return exc.failure, exc.request_id
    call = getattr(exc, "response", None)
    if call is None and isinstance(exc, grpc.Call):
        call = exc
    trailers = getattr(call, "trailing_metadata", None)
    if not callable(trailers):
        return None, None
    try:
        metadata = trailers() or ()
    except Exception:  # a call object that cannot say: there is nothing more to learn
        return None, None
    failure, request_id = None, None
    for key, value in metadata:
        if key == FAILURE_KEY:
            try:
                failure = GoogleAdsFailure.deserialize(value)
            except Exception:
                failure = None
        elif key == "request-id":
            request_id = value if isinstance(value, str) else value.decode()
    return failure, request_id


def _error_codes(failure: GoogleAdsFailure) -> Iterator[tuple[str, Any, Any]]:
    """(kind, enum value, error) for each error: kind is the ErrorCode oneof set, e.g. "quota_error"."""
    for error in failure.errors:
        kind = type(error.error_code).pb(error.error_code).WhichOneof("error_code")
        if kind:
            yield kind, getattr(error.error_code, kind), error


def _describe(failure: GoogleAdsFailure) -> str:
    parts = []
    for kind, value, error in _error_codes(failure):
        name = getattr(value, "name", value)
        parts.append(f"{kind}.{name}: {error.message}")
    return "; ".join(parts) or "no error details"


def _quota_wait(error: Any) -> float | None:
    delay = error.details.quota_error_details.retry_delay if error.details else None
    if delay:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(getattr(delay, "seconds", 0))
        if seconds:
            return seconds
    match = re.search(r"Retry in (\d+) seconds", error.message or "")
    return float(match.group(1)) if match else None


def classify() -> Callable[[BaseException], Decision]:
    def decide(exc: BaseException) -> Decision:
        failure, request_id = ads_failure(exc)
        if failure is not None:
            for kind, value, error in _error_codes(failure):
                if kind == "quota_error" and value in _QUOTA_WAIT:
                    # The API's delay, unshortened: the policy waits it in full or, beyond its ceiling,
                    # refuses rather than retrying early (which would be refused and cost quota again).
                    # No delay given: the policy's own backoff.
                    return Retry(_quota_wait(error))
                if kind == "quota_error" and value in _QUOTA_STOP:
                    rate = error.details.quota_error_details.rate_name if error.details else ""
                    return Stop(
                        f"the Google Ads API quota is exhausted ({value.name}{', ' + rate if rate else ''}): "
                        f"{error.message} (request id {request_id}). The extract stopped and its cursor did not "
                        "move; the next run resumes once the quota resets."
                    )
                if kind == "internal_error" and value in _INTERNAL_RETRY:
                    return Retry()
        if isinstance(exc, GoogleAdsException):
            return None  # authentication, permission, a bad query: waiting changes nothing
        if isinstance(exc, _RETRYABLE):
            return Retry()
        if isinstance(exc, grpc.RpcError) and isinstance(exc, grpc.Call) and exc.code() in _RETRYABLE_CODES:
            return Retry()
        return None

    return decide


def _clear_error(exc: Exception) -> GoogleAdsError:
    failure, request_id = ads_failure(exc)
    status = exc.error.code().name if isinstance(exc, GoogleAdsException) else type(exc).__name__
    detail = _describe(failure) if failure is not None else str(exc)
    hint = ""
    if failure is not None and any(kind == "authentication_error" for kind, _v, _e in _error_codes(failure)):
        hint = " Check GOOGLE_ADS_DEVELOPER_TOKEN and the OAuth credentials (GOOGLE_ADS_REFRESH_TOKEN)."
    elif failure is not None and any(kind == "authorization_error" for kind, _v, _e in _error_codes(failure)):
        hint = " Check that GOOGLE_ADS_LOGIN_CUSTOMER_ID is a manager of GOOGLE_ADS_CUSTOMER_ID."
    return GoogleAdsError(f"Google Ads API error ({status}): {detail} (request id {request_id}).{hint}")


# ----------------------------------------------------------------------------------------------- client


def build_google_ads_client(config: GoogleAdsConfig) -> GoogleAdsClient:
    """The production client (route A): TLS to `endpoint`, OAuth credentials from the config.

    Credentials are passed in rather than loaded by the library, which would refresh them against a
    hard-coded Google URL (saas-apis.md §5.2 gotcha 3). A bare access token has no expiry, so it is
    used as is and never refreshed.
    """
    credentials = Credentials(
        token=config.oauth_token,
        refresh_token=config.refresh_token,
        client_id=config.client_id,
        client_secret=config.client_secret,
        token_uri=TOKEN_URI,
        scopes=[ADWORDS_SCOPE],
    )
    return GoogleAdsClient(
        credentials=credentials,
        developer_token=config.developer_token,
        endpoint=config.endpoint,
        login_customer_id=config.login_customer_id,
        version=API_VERSION,
        use_proto_plus=True,
    )


def open_service(config: GoogleAdsConfig) -> tuple[GoogleAdsServiceClient, Callable[[], None]]:
    """A GoogleAdsService client and the function that closes its channel."""
    if config.insecure_channel:
        channel = grpc.insecure_channel(config.endpoint or "", options=_CHANNEL_OPTIONS)
        intercepted = grpc.intercept_channel(
            channel,
            MetadataInterceptor(config.developer_token, config.login_customer_id, None),
            ExceptionInterceptor(API_VERSION, use_proto_plus=True),
        )
        service = GoogleAdsServiceClient(transport=GoogleAdsServiceGrpcTransport(channel=intercepted))
        return service, channel.close
    service = build_google_ads_client(config).get_service("GoogleAdsService", version=API_VERSION)
    return service, service.transport.close


class Ads:
    """One extract's service client and call policy. Used as a context manager per resource, so the
    service object (and with it the channel) stays referenced while its streams are read (§5.2 gotcha 2)."""

    def __init__(self, config: GoogleAdsConfig, policy: ApiPolicy) -> None:
        self.config = config
        self.policy = policy
        self.service: GoogleAdsServiceClient | None = None
        self._close: Callable[[], None] | None = None

    def __enter__(self) -> Ads:
        self.service, self._close = open_service(self.config)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._close is not None:
            self._close()
        self.service, self._close = None, None

    def search(self, customer_id: str, query: str) -> list[Any]:
        service = self.service
        assert service is not None, "use Ads as a context manager"

        def read_all() -> list[Any]:
            stream = service.search_stream(
                customer_id=customer_id, query=query, timeout=self.config.stream_timeout_seconds
            )
            return [row for batch in stream for row in batch.results]

        try:
            return self.policy.call(read_all)
        except (GoogleAdsException, core_exceptions.GoogleAPICallError) as exc:
            raise _clear_error(exc) from exc
