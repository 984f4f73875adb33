"""An OTLP/gRPC receiver for the telemetry tests, built from the official
OTLP protobuf definitions (PyPI's opentelemetry-proto, served with grpcio).

    python otlp_receiver.py OUT.jsonl

Listens on a free loopback port and prints it as its first line; appends
every span it receives to OUT.jsonl as one JSON object a line (service,
trace_id, span_id, parent_span_id, name, kind, attributes, links), and every
metric as {"metric": name, "service": ...}. Runs until killed.
"""

import json
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)

LOCK = threading.Lock()


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind in (
        "string_value", "bool_value", "int_value", "double_value") else str(v)


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def service_of(resource):
    return attributes(resource.attributes).get("service.name", "")


class Out:
    def __init__(self, path):
        self.path = path

    def write(self, records):
        with LOCK, open(self.path, "a", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")


class Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out):
        self.out = out

    def Export(self, request, context):
        records = []
        for rs in request.resource_spans:
            service = service_of(rs.resource)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    records.append({
                        "service": service,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": s.kind,
                        "attributes": attributes(s.attributes),
                        "links": [
                            {"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex()}
                            for l in s.links
                        ],
                    })
        self.out.write(records)
        return trace_service_pb2.ExportTraceServiceResponse()


class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, out):
        self.out = out

    def Export(self, request, context):
        records = []
        for rm in request.resource_metrics:
            service = service_of(rm.resource)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    records.append({"metric": m.name, "service": service})
        self.out.write(records)
        return metrics_service_pb2.ExportMetricsServiceResponse()


def main():
    out = Out(sys.argv[1])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(out), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(out), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
