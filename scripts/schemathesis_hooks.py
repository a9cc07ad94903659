"""Hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

The run authenticates with one token; schemathesis tries `DELETE /api/tokens/{id}` with
whatever ids it likes, and revoking the run's own token would turn every later request into
a 401. That one id is swapped for an id no token has; every other id, and the operation
itself, are still tested.

Each request also comes from an address of its own: Rivetr is started with 127.0.0.1 as a
trusted proxy, and every request names a new client in `X-Forwarded-For`. Rivetr locks an
address out (429) after 10 failed authentications, which is right for a real client but would
turn the `ignored_auth` check's wrong tokens into a 429 on whichever operations come after
(tests/api_auth.rs tests the lockout itself).
"""

import itertools
import os
import threading

import schemathesis

OWN_TOKEN_ID = os.environ.get("RIVETR_SCHEMATHESIS_TOKEN_ID", "")
UNUSED_ID = 2**53
# What scripts/schemathesis.sh set up for the other operations to find: deleting it would
# turn them back into 404s, so a DELETE of one is sent for a name nothing has.
KEPT = {
    "/api/apps/{app}": ("app", "st-app"),
    "/api/notifications/{name}": ("name", "st-hook"),
    "/api/backup-destinations/{name}": ("name", "st-backups"),
}

_clients = itertools.count(1)
_clients_lock = threading.Lock()


def next_client():
    """A new address in 10.0.0.0/8 for every call (16 million before one repeats)."""
    with _clients_lock:
        n = next(_clients) % (1 << 24)
    return f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}"


@schemathesis.hook
def before_call(context, case, kwargs):
    if (
        case.method.upper() == "DELETE"
        and case.operation.path == "/api/tokens/{id}"
        and str((case.path_parameters or {}).get("id")) == OWN_TOKEN_ID
    ):
        case.path_parameters["id"] = UNUSED_ID
    kept = KEPT.get(case.operation.path)
    if case.method.upper() == "DELETE" and kept is not None:
        name, value = kept
        if (case.path_parameters or {}).get(name) == value:
            case.path_parameters[name] = value + "-gone"
    # On the case, not in `kwargs`: schemathesis passes the case's headers itself. Not on a
    # case that tests a missing or broken header: editing its headers makes schemathesis take
    # it for a valid case and send the header it means to leave out.
    if header_is_under_test(case):
        return
    if case.headers is None:
        case.headers = {}
    case.headers["X-Forwarded-For"] = next_client()


def header_is_under_test(case):
    meta = case.meta
    if meta is None:
        return False
    location = getattr(meta.phase.data, "parameter_location", None)
    return meta.generation.mode.is_negative and str(getattr(location, "value", location)) == "header"
