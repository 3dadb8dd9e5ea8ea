"""Schemathesis hooks for tests/openapi.rs: tus bodies
(application/offset+octet-stream) are raw bytes, as
application/octet-stream ones are; WHIP's SDP offers and trickle-ICE
fragments (application/sdp, application/trickle-ice-sdpfrag) are text."""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
schemathesis.serializer.alias(
    ["application/sdp", "application/trickle-ice-sdpfrag"], "text/plain"
)
