"""``python -m api``: serve the API with uvicorn on COUNTERSIGN_API_HOST:COUNTERSIGN_API_PORT.

SIGINT or SIGTERM stops taking requests, cancels the Temporal waits of the
requests in flight (they answer 503 ``shutting_down``; their runs go on) and
exits with status 0, without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator

import uvicorn

from api.deps import AppState
from api.main import create_app
from countersign import event_loop
from countersign.logs import configure_logging
from countersign.settings import get_settings

logger = logging.getLogger("countersign.api")


class _Server(uvicorn.Server):
    """uvicorn, with our signal handling instead of its own.

    uvicorn re-raises the signal after its graceful shutdown, which ends the
    process with a KeyboardInterrupt traceback or a non-zero status; we install
    loop signal handlers in :func:`main` instead.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def main() -> None:
    """Entry point."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    state: AppState = app.state.countersign
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        proxy_headers=True,
        # The C parser: the pure-Python h11 costs more CPU per request.
        http="httptools",
    )
    server = _Server(config)

    def stop(sig: signal.Signals) -> None:
        if server.should_exit:
            server.force_exit = True
            return
        logger.info("%s received: shutting down", sig.name)
        state.waits.cancel_all()
        server.should_exit = True

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop, sig)
        await server.serve()

    event_loop.run(serve())
    logger.info("API stopped")


if __name__ == "__main__":
    main()
    # The process holds a Temporal client: leave without the interpreter teardown
    # that the SDK's threads can abort (temporalio/sdk-python#300).
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)
