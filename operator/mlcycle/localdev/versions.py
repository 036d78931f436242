"""Every pinned version of the local stack, in one place."""

KUBERNETES = "v1.36.1"  # kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
STAGING = "v0.36.1"  # k8s.io/* staging modules matching KUBERNETES
ETCD = "v3.6.8"  # the go.etcd.io/etcd/server/v3 that KUBERNETES itself requires
KWOK = "v0.8.0"  # kwok and kwokctl; its default Kubernetes is 1.36
MINIO = "v0.0.0-20260212201848-7aac2a2c5b7c"  # github.com/minio/minio (no semver tags)
HELM = "v3.22.0"  # helm.sh/helm/v3 (make chart-check, the chart e2e tests)
PYTRITON = "0.7.0"  # nvidia-pytriton wheel that ships tritonserver
