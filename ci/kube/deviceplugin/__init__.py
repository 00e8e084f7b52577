"""The rig device plugin (`hilci deviceplugin`): rigs as the Kubernetes extended resource `hilci.dev/rig`.

`api.proto` is the kubelet's Device Plugin API v1beta1 (see PROTO.md for its origin); `api_pb2.py` and
`api_pb2_grpc.py` are generated from it by grpcio-tools (`make deviceplugin-proto`) and committed. Only this
package imports grpc: `hilci` itself starts without it.
"""
