"""Hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

The run authenticates with one token; schemathesis tries `DELETE /api/tokens/{id}` with
whatever ids it likes, and revoking the run's own token would turn every later request into
a 401. That one id is swapped for an id no token has; every other id, and the operation
itself, are still tested.
"""

import os

import schemathesis

OWN_TOKEN_ID = os.environ.get("RIVETR_SCHEMATHESIS_TOKEN_ID", "")
UNUSED_ID = 2**53


@schemathesis.hook
def before_call(context, case, kwargs):
    if (
        case.method.upper() == "DELETE"
        and case.operation.path == "/api/tokens/{id}"
        and str((case.path_parameters or {}).get("id")) == OWN_TOKEN_ID
    ):
        case.path_parameters["id"] = UNUSED_ID


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keeps every failure but one: `ignored_auth` (ST401) seeing Rivetr's lockout.

    After 10 failed authentications from one address Rivetr answers any token but a valid one
    with 429 `rate_limited` and `Retry-After` (README, `[server] trusted_proxies`; documented
    on every protected operation). ignored_auth sends invalid tokens on purpose and accepts
    only 401 or 403, so once it has used up the address's attempts it reports the lockout as
    "authentication not enforced". The request was refused all the same: that failure is
    dropped, and only when the answer really is the lockout's.
    """
    if getattr(failure, "code", None) != "ST401" or response.status_code != 429:
        return True
    try:
        code = response.json()["error"]["code"]
    except Exception:
        return True
    return not (code == "rate_limited" and "retry-after" in {k.lower() for k in response.headers})
