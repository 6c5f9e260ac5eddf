"""An HTTP function in Python: a standard wasi:http/proxy component built with componentize-py.

It answers every request with the path (and query) it was called at, as aimass hands it over
(the part after /fn/{name}). Build it with scripts/python-fn.sh, which installs componentize-py
and takes the WASI 0.2 WIT from the `wasip2` crate the workspace already depends on:

    scripts/python-fn.sh /tmp/py-hello.wasm
    aimass plugin push py-hello /tmp/py-hello.wasm
"""

from wit_world import exports
from wit_world.imports.types import (
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
)
from componentize_py_types import Ok


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = request.path_with_query() or "/"
        resp = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        body = resp.body()
        ResponseOutparam.set(response_out, Ok(resp))
        with body.write() as stream:
            stream.blocking_write_and_flush(f"Hello from Python at {path}\n".encode())
        OutgoingBody.finish(body, None)
