"""The Kubernetes side: pod templates and the cluster view."""
