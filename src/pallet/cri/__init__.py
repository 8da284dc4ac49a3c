"""The CRI-O idea: the Kubernetes Container Runtime Interface (``runtime.v1``) over a unix
socket, built only from the layers below (docs/cri.md).

``cri.config`` (``/etc/pallet/cri.conf``), ``cri.cni`` (CNI plugins for pod networks),
``cri.pods`` (sandboxes: a network namespace, CNI, a ``catatonit -P`` pause container),
``cri.ctrs`` (the kubelet's containers on the ``containers`` model), ``cri.stats`` (cgroup figures), ``cri.imagesvc`` (the
image service on the store), ``cri.service`` (gRPC servicers: protobuf in and out, errors to
status codes, a lock per pod) and ``cri.server`` (``pallet cri serve``). Only this package imports grpc.
"""
