"""The local stack's real Invoke API handler, served in process on 127.0.0.1 with a stand-in pool (for the
clients' unit tests), and stopped by its own handle."""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator

from rcyc_cli.local.stack.admission import Admission, FaultSwitch
from rcyc_cli.local.stack.invoke_api import Api, StackHTTPServer


@contextlib.contextmanager
def serving(pool_invoke: Callable, names: tuple[str, ...], admission: Admission) -> Iterator[Api]:
    """The Api answering for ``names``, with ``endpoint`` set to where it listens."""
    api = Api(pool_invoke, lambda: {}, names, admission, None, FaultSwitch(), read_timeout=5)
    server = StackHTTPServer(("127.0.0.1", 0), api)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    api.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
