"""Stand-in for `celery-scaler serve`, used only to test deploy/check-metrics.sh before the
real binary builds. Serves /healthz, /readyz and /metrics (every metric the contract says is
exported now, with one series each) and answers the ExternalScaler RPCs with empty messages.

    python stub-scaler.py serve --grpc-listen 127.0.0.1:P --admin-listen 127.0.0.1:Q [--omit NAME]

--omit drops one metric from /metrics (to prove check-metrics.sh notices). Needs grpcio.
"""
import argparse
import http.server
import threading
from concurrent import futures

import grpc

METRICS = """\
# HELP celery_scaler_queue_backlog Tasks waiting in the queue lists.
# TYPE celery_scaler_queue_backlog gauge
celery_scaler_queue_backlog{broker="stub",queue="high"} 0
# HELP celery_scaler_queue_in_flight Unacked tasks by state.
# TYPE celery_scaler_queue_in_flight gauge
celery_scaler_queue_in_flight{broker="stub",queue="high",state="reserved"} 0
# HELP celery_scaler_metric_value Metric value.
# TYPE celery_scaler_metric_value gauge
celery_scaler_metric_value{namespace="celery",scaled_object="so"} 0
# HELP celery_scaler_active Active.
# TYPE celery_scaler_active gauge
celery_scaler_active{namespace="celery",scaled_object="so"} 0
# HELP celery_scaler_decision_slots Breakdown.
# TYPE celery_scaler_decision_slots gauge
celery_scaler_decision_slots{namespace="celery",scaled_object="so",component="backlog"} 0
# HELP celery_scaler_grpc_requests_total Requests.
# TYPE celery_scaler_grpc_requests_total counter
celery_scaler_grpc_requests_total{rpc="GetMetrics",code="Ok"} 1
# HELP celery_scaler_grpc_request_duration_seconds Latency.
# TYPE celery_scaler_grpc_request_duration_seconds histogram
celery_scaler_grpc_request_duration_seconds_bucket{rpc="GetMetrics",le="0.1"} 1
celery_scaler_grpc_request_duration_seconds_bucket{rpc="GetMetrics",le="+Inf"} 1
celery_scaler_grpc_request_duration_seconds_sum{rpc="GetMetrics"} 0.01
celery_scaler_grpc_request_duration_seconds_count{rpc="GetMetrics"} 1
# HELP celery_scaler_redis_errors_total Errors.
# TYPE celery_scaler_redis_errors_total counter
celery_scaler_redis_errors_total{broker="stub",kind="connect"} 1
# HELP celery_scaler_redis_commands_total Commands.
# TYPE celery_scaler_redis_commands_total counter
celery_scaler_redis_commands_total{broker="stub"} 1
# HELP celery_scaler_unacked_malformed_total Malformed.
# TYPE celery_scaler_unacked_malformed_total counter
celery_scaler_unacked_malformed_total{broker="stub"} 1
# HELP celery_scaler_sample_duration_seconds Sample duration.
# TYPE celery_scaler_sample_duration_seconds histogram
celery_scaler_sample_duration_seconds_bucket{broker="stub",le="0.1"} 1
celery_scaler_sample_duration_seconds_bucket{broker="stub",le="+Inf"} 1
celery_scaler_sample_duration_seconds_sum{broker="stub"} 0.01
celery_scaler_sample_duration_seconds_count{broker="stub"} 1
# HELP celery_scaler_sample_age_seconds Sample age.
# TYPE celery_scaler_sample_age_seconds gauge
celery_scaler_sample_age_seconds{broker="stub"} 0.5
# HELP celery_scaler_watch_sets Watch sets.
# TYPE celery_scaler_watch_sets gauge
celery_scaler_watch_sets{broker="stub"} 1
# HELP celery_scaler_grpc_streams_open Streams.
# TYPE celery_scaler_grpc_streams_open gauge
celery_scaler_grpc_streams_open 1
# HELP celery_scaler_pubsub_commands_total Pub/sub commands.
# TYPE celery_scaler_pubsub_commands_total counter
celery_scaler_pubsub_commands_total{broker="stub"} 2
# HELP celery_scaler_queue_arrival_rate Arrivals.
# TYPE celery_scaler_queue_arrival_rate gauge
celery_scaler_queue_arrival_rate{broker="stub",queue="high"} 0.5
# HELP celery_scaler_queue_dequeue_rate Dequeues.
# TYPE celery_scaler_queue_dequeue_rate gauge
celery_scaler_queue_dequeue_rate{broker="stub",queue="high"} 0.5
# HELP celery_scaler_queue_service_time_seconds Service time.
# TYPE celery_scaler_queue_service_time_seconds gauge
celery_scaler_queue_service_time_seconds{broker="stub",queue="high"} 2
# HELP celery_scaler_queue_service_time_p95_seconds Service time p95.
# TYPE celery_scaler_queue_service_time_p95_seconds gauge
celery_scaler_queue_service_time_p95_seconds{broker="stub",queue="high"} 5
# HELP celery_scaler_queue_wait_seconds Wait.
# TYPE celery_scaler_queue_wait_seconds gauge
celery_scaler_queue_wait_seconds{broker="stub",queue="high"} 1
# HELP celery_scaler_queue_running Running.
# TYPE celery_scaler_queue_running gauge
celery_scaler_queue_running{broker="stub",queue="high"} 1
# HELP celery_scaler_signal_mode Signal modes.
# TYPE celery_scaler_signal_mode gauge
celery_scaler_signal_mode{broker="stub",queue="high",signal="arrival_rate",mode="exact"} 1
celery_scaler_signal_mode{broker="stub",queue="high",signal="running",mode="heartbeat"} 1
# HELP celery_scaler_build_info Build.
# TYPE celery_scaler_build_info gauge
celery_scaler_build_info{version="0.0.0-stub"} 1
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd")
    p.add_argument("--grpc-listen", required=True)
    p.add_argument("--admin-listen", required=True)
    p.add_argument("--omit", default="")
    p.add_argument("--config", default="")  # accepted and ignored
    a = p.parse_args()
    body = "".join(
        line + "\n" for line in METRICS.splitlines() if not (a.omit and a.omit in line)
    ).encode()

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path in ("/healthz", "/readyz"):
                self._send(b"ok\n", "text/plain")
            elif self.path == "/metrics":
                self._send(body, "text/plain; version=0.0.4")
            else:
                self.send_error(404)

        def _send(self, data, ctype):
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    host, port = a.admin_listen.rsplit(":", 1)
    httpd = http.server.ThreadingHTTPServer((host, int(port)), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def unary(request, context):
        return b""

    rpcs = {m: grpc.unary_unary_rpc_method_handler(unary, request_deserializer=None, response_serializer=None)
            for m in ("IsActive", "GetMetricSpec", "GetMetrics")}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("externalscaler.ExternalScaler", rpcs),))
    server.add_insecure_port(a.grpc_listen)
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
