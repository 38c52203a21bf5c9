"""Schemathesis hooks for tests/e2e/contract.test.ts: how a viewer's token reaches each request.

The token (UGC_CONTRACT_TOKEN, signed by the test) goes where the document says: the Authorization
header, except for the unload form (text/plain), which carries it in the body. A header beside a
body token is refused (400 conflicting_tokens, RFC 6750 section 2: one method per request).
"""
import os

import schemathesis

TOKEN = os.environ["UGC_CONTRACT_TOKEN"]


@schemathesis.auth()
class ViewerToken:
    def get(self, case, ctx):
        return TOKEN

    def set(self, case, data, ctx):
        if case.media_type == "text/plain":
            return
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.hook
def map_body(ctx, body):
    # An unload batch's token is the viewer's (a generated string would only ever test a bad token).
    if isinstance(body, dict) and isinstance(body.get("token"), str) and isinstance(body.get("events"), list):
        return {**body, "token": TOKEN}
    return body
