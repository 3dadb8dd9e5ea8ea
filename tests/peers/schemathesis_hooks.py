"""Schemathesis hooks for tests/openapi.rs: tus bodies
(application/offset+octet-stream) are raw bytes, as
application/octet-stream ones are."""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
