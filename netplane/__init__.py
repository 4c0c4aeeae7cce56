"""netplane: a Kubernetes-style networking data plane and service proxy."""
