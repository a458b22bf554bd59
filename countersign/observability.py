"""Worker runtime metrics (Prometheus), OpenTelemetry tracing, run ids on log lines.

- ``COUNTERSIGN_WORKER_METRICS_PORT`` set: the Temporal SDK's own metrics
  (``temporal_request``, ``temporal_workflow_task_schedule_to_start_latency``,
  activity and poller metrics...) are served at ``http://<host>:<port>/metrics``
  by the SDK's core runtime.
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` set: workflow, activity, update and signal
  spans go to an OTLP/HTTP collector through the SDK's ``TracingInterceptor``.
  The exporter packages are the optional extra ``countersign[otel]``.
- :class:`RunContextFilter` puts the run id (and workflow id, activity type)
  on every log line written while an activity or workflow runs, whichever
  logger wrote it, so JSON logs can be filtered by run.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.client import Client, Interceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from countersign.client import WORKFLOW_ID_PREFIX, run_id_of
from countersign.settings import Settings

logger = logging.getLogger("countersign.observability")

# All interfaces: in a container Prometheus scrapes from another host, and on a
# developer machine the SDK metrics tell nothing secret.
METRICS_BIND_HOST = "0.0.0.0"

OTEL_EXTRA_HINT = "pip install 'countersign[otel]'"


def _run_id_of(workflow_id: str) -> str | None:
    if workflow_id.startswith(WORKFLOW_ID_PREFIX):
        return run_id_of(workflow_id)
    return None


class RunContextFilter(logging.Filter):
    """Adds ``run_id``, ``workflow_id`` and ``activity_type`` to records of a run.

    Inside an activity they come from the activity's info; inside a workflow
    from the ``temporal_workflow`` details that ``workflow.logger`` attaches.
    Values a caller passed in ``extra`` are kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Enrich ``record``; never drops it."""
        workflow_id: str | None = None
        if activity.in_activity():
            info = activity.info()
            workflow_id = info.workflow_id
            if getattr(record, "activity_type", None) is None:
                record.activity_type = info.activity_type
        else:
            details = getattr(record, "temporal_workflow", None)
            if isinstance(details, dict) and isinstance(details.get("workflow_id"), str):
                workflow_id = details["workflow_id"]
        if workflow_id:
            if getattr(record, "workflow_id", None) is None:
                record.workflow_id = workflow_id
            if getattr(record, "run_id", None) is None:
                record.run_id = _run_id_of(workflow_id)
        return True


def install_run_context(logger: logging.Logger | None = None) -> None:
    """Add :class:`RunContextFilter` to the handlers of ``logger`` (default: root).

    Handler filters see records from every logger that propagates to them;
    a filter on the logger itself would miss its children.
    """
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RunContextFilter) for f in handler.filters):
            handler.addFilter(RunContextFilter())


def worker_metrics_address(settings: Settings) -> str | None:
    """``host:port`` the worker's metrics endpoint binds to, or ``None`` when off."""
    if settings.worker_metrics_port is None:
        return None
    return f"{METRICS_BIND_HOST}:{settings.worker_metrics_port}"


def metrics_runtime(bind_address: str) -> Runtime:
    """A Temporal core runtime that serves the SDK's metrics for Prometheus.

    Durations are reported in seconds and counters get the ``_total`` suffix
    only where the SDK names them so, which keeps the names the SDK documents
    (``temporal_request``, ``temporal_activity_execution_latency``...).

    Args:
        bind_address: ``host:port`` of the ``/metrics`` HTTP endpoint.
    """
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=bind_address, durations_as_seconds=True)
        )
    )


def install_worker_runtime(settings: Settings) -> str | None:
    """Make the metrics runtime the process default when metrics are switched on.

    Call it before the first Temporal client is created: clients and workers
    use the runtime that is the default when they are made.

    Returns:
        The bound ``host:port``, or ``None`` when metrics are off.
    """
    address = worker_metrics_address(settings)
    if address is None:
        return None
    Runtime.set_default(metrics_runtime(address), error_if_already_set=True)
    logger.info("worker metrics at http://%s/metrics", address)
    return address


@dataclass(frozen=True)
class Tracing:
    """Tracing switched on: the interceptors to install and how to flush at exit."""

    interceptors: Sequence[Interceptor]
    shutdown: Callable[[], None]


def _otel_module(name: str) -> Any:
    # Imported by name so that the optional packages stay optional for mypy
    # and for installs without the ``otel`` extra.
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise RuntimeError(
            f"OTEL_EXPORTER_OTLP_ENDPOINT is set but {name} is not installed: {OTEL_EXTRA_HINT}"
        ) from exc


def configure_tracing(settings: Settings, service_name: str) -> Tracing | None:
    """Set up OTLP/HTTP span export and the SDK's tracing interceptor.

    Args:
        settings: ``otel_endpoint`` is the collector's base URL, as in the
            OpenTelemetry convention (spans go to ``<endpoint>/v1/traces``).
        service_name: ``service.name`` of the spans, e.g. ``countersign-worker``.

    Returns:
        ``None`` when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is not set.

    Raises:
        RuntimeError: The endpoint is set but the ``otel`` extra is not installed.
    """
    if not settings.otel_endpoint:
        return None
    trace_api = _otel_module("opentelemetry.trace")
    resources = _otel_module("opentelemetry.sdk.resources")
    sdk_trace = _otel_module("opentelemetry.sdk.trace")
    export = _otel_module("opentelemetry.sdk.trace.export")
    otlp = _otel_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    contrib = _otel_module("temporalio.contrib.opentelemetry")

    provider = sdk_trace.TracerProvider(
        resource=resources.Resource.create({resources.SERVICE_NAME: service_name})
    )
    endpoint = settings.otel_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(export.BatchSpanProcessor(otlp.OTLPSpanExporter(endpoint=endpoint)))
    trace_api.set_tracer_provider(provider)
    interceptor: Interceptor = contrib.TracingInterceptor()
    logger.info("tracing: spans of %s go to %s", service_name, endpoint)
    return Tracing(interceptors=[interceptor], shutdown=provider.shutdown)


def with_interceptors(client: Client, interceptors: Sequence[Interceptor]) -> Client:
    """The same connection with more client interceptors.

    Interceptors that are also worker interceptors (``TracingInterceptor`` is)
    apply to every worker built on the returned client.
    """
    if not interceptors:
        return client
    config = client.config()
    config["interceptors"] = [*config["interceptors"], *interceptors]
    return Client(**config)
