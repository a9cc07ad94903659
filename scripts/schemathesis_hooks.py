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
