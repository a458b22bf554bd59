"""The benchmark's scripted model: an OpenAI-compatible Responses endpoint.

``python -m bench.model_server --port N`` serves ``POST /v1/responses`` on
127.0.0.1, for the real ``openai`` client in the Countersign worker. Its
script is the benchmark's flow and nothing else:

- turn 1 (no tool output in the input yet): one ``delete_records`` call;
- turn 2 (the tool's output is in the input): a final text quoting it.

It keeps no state (unlike ``tests/scripted_openai.py``, which logs every
request for assertions), so its memory stays flat however many runs the
benchmark makes, and it runs in its own process so that its CPU is not
charged to the worker or the driver.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

GATED_TOOL = "delete_records"
GATED_ARGS = '{"table_name": "users", "count": 5}'

_ids = itertools.count(1)


def _tool_outputs(body: dict[str, Any]) -> list[str]:
    items = body.get("input") or []
    if isinstance(items, str):
        return []
    return [str(i.get("output")) for i in items if i.get("type") == "function_call_output"]


def _output(body: dict[str, Any]) -> list[dict[str, Any]]:
    outputs = _tool_outputs(body)
    n = next(_ids)
    if not outputs:
        return [
            {
                "type": "function_call",
                "id": f"fc_{n}",
                "call_id": f"call_{n}",
                "name": GATED_TOOL,
                "arguments": GATED_ARGS,
                "status": "completed",
            }
        ]
    text = "Done: " + " | ".join(outputs)
    return [
        {
            "type": "message",
            "id": f"msg_{n}",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
    ]


async def responses(request: Request) -> JSONResponse:
    """One model turn of the benchmark's script."""
    body = await request.json()
    return JSONResponse(
        {
            "id": f"resp_{next(_ids)}",
            "object": "response",
            "created_at": 1_700_000_000,
            "model": body.get("model", "bench"),
            "status": "completed",
            "output": _output(body),
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": 11,
                "output_tokens": 7,
                "total_tokens": 18,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }
    )


async def health(request: Request) -> PlainTextResponse:
    """Readiness probe for the benchmark driver."""
    del request
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ]
)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the scripted model on 127.0.0.1 until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.model_server")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
