"""The local stack for development and tests: a real Kubernetes control plane (kwok nodes), MinIO and
Triton on loopback, started from binaries built once and cached outside the repo."""
