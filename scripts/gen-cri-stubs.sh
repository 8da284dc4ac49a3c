#!/usr/bin/env bash
# Regenerate the CRI protobuf and gRPC modules kept in src/pallet/cri/api/ from runtime_v1.proto
# (needs grpcio-tools in .venv: .venv/bin/pip install grpcio-tools; the modules it writes need only
# grpcio and protobuf at run time).
set -euo pipefail
cd "$(dirname "$0")/../src"
../.venv/bin/python -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. pallet/cri/api/runtime_v1.proto
