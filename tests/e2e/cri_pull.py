"""A kubelet-style image pull: CRI `ImageService.PullImage` over containerd's gRPC socket, with
PyPI `container-runtime-interface-api` (the CRI v1 protocol). Prints one JSON line: the image
reference pulled, or the gRPC status and details; exits 0 or 1.

Usage: python3 cri_pull.py SOCKET IMAGE
"""
import json
import sys

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc


def main() -> int:
    sock, image = sys.argv[1], sys.argv[2]
    stub = api_pb2_grpc.ImageServiceStub(grpc.insecure_channel("unix://" + sock))
    try:
        reply = stub.PullImage(
            api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)), timeout=60
        )
    except grpc.RpcError as e:
        print(json.dumps({"ok": False, "code": e.code().name, "details": e.details()}))
        return 1
    status = stub.ImageStatus(
        api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=image)), timeout=60
    )
    print(json.dumps({"ok": True, "image_ref": reply.image_ref,
                      "repo_digests": list(status.image.repo_digests)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
